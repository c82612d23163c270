//! Mailman 2 (trail `mailinglist`): its `post`, `subscribe` and `bounce`
//! logs, which share one layout (time with year, then the process id).
//!
//! ```text
//! Oct 10 13:55:36 2024 (2417) post to team from alice@example.org, size=5120, message-id=<20241010.x@example.org>, success
//! Oct 10 13:55:37 2024 (2417) post to team from eve@example.net, size=812, message-id=<q@example.net>, 3 failures
//! Oct 10 14:02:11 2024 (2420) team: new bob@example.net, admin mass sub
//! Oct 10 14:03:40 2024 (2420) team: deleted carol@example.org, via member options page
//! Oct 10 14:05:02 2024 (2433) team: dave@example.com bounce score: 1.0
//! ```
//!
//! Posts become `mailinglist.post` (`sender`, `size`, `message_id`,
//! `status`), `new` and `deleted` become `mailinglist.member.add` /
//! `.remove` (`address`, and how in `via`), bounce lines (`bounce score`,
//! `residual bounce`, `disabling`) `mailinglist.bounce` (`address`).

use super::fields::{ParseOptions, Unrecognised, failure, text_field};
use super::mail::field;
use super::time;
use crate::HostingAction;
use crate::event::{Actor, Event, EventBuilder};

pub(super) fn parse(line: &str, options: &ParseOptions) -> Result<EventBuilder, Unrecognised> {
    let stamp = line.get(..20).ok_or("line too short")?;
    let time = time::mailman(stamp, options.utc_offset).ok_or("no Mailman time")?;
    let rest = line[20..].strip_prefix(" (").ok_or("no process id")?;
    let (_pid, message) = rest.split_once(") ").ok_or("no process id")?;
    let event = if let Some(post) = message.strip_prefix("post to ") {
        post_line(post)?
    } else {
        list_line(message)?
    };
    Ok(event.occurred_at(time))
}

fn post_line(post: &str) -> Result<EventBuilder, Unrecognised> {
    let (list, rest) = post.split_once(" from ").ok_or("post without sender")?;
    let (sender, rest) = rest.split_once(", ").ok_or("post without size")?;
    let status = rest.rsplit_once(", ").map_or(rest, |(_, status)| status);
    let mut event = Event::builder(HostingAction::MailingListPost.name())
        .actor(Actor::anonymous(sender))
        .target("mailing_list", list);
    event = text_field(event, "sender", sender);
    if let Some(size) = field(rest, "size").and_then(|s| s.parse::<u64>().ok()) {
        event = event.meta("size", size);
    }
    if let Some(message_id) = field(rest, "message-id") {
        event = text_field(event, "message_id", message_id);
    }
    event = text_field(event, "status", status);
    Ok(if status == "success" {
        event
    } else {
        failure(event, status)
    })
}

fn list_line(message: &str) -> Result<EventBuilder, Unrecognised> {
    let (list, text) = message.split_once(": ").ok_or("not a list line")?;
    if list.is_empty() || list.contains(' ') {
        return Err("not a list line");
    }
    let member = |action: HostingAction, rest: &str| {
        let (address, via) = rest.split_once(", ").unwrap_or((rest, ""));
        let event = Event::builder(action.name())
            .actor(Actor::system("mailman"))
            .target("mailing_list", list);
        let event = text_field(event, "address", address);
        if via.is_empty() {
            event
        } else {
            text_field(event, "via", via)
        }
    };
    if let Some(rest) = text.strip_prefix("new ") {
        return Ok(member(HostingAction::MailingListMemberAdd, rest));
    }
    if let Some(rest) = text.strip_prefix("deleted ") {
        return Ok(member(HostingAction::MailingListMemberRemove, rest));
    }
    let address = if let Some(rest) = text.strip_prefix("disabling ") {
        rest.split_once(':').map_or(rest, |(address, _)| address)
    } else if text.contains(" bounce") {
        text.split_once(' ').map_or(text, |(address, _)| address)
    } else {
        return Err("unknown list line");
    };
    let event = Event::builder(HostingAction::MailingListBounce.name())
        .actor(Actor::system("mailman"))
        .target("mailing_list", list);
    let event = text_field(event, "address", address);
    Ok(text_field(event, "text", text))
}
