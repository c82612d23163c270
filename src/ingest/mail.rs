//! Postfix (trail `mail`): action `mail.delivery` for each delivery attempt
//! and each rejected recipient, `mail.queue` for the other lines of a
//! queued message, `mail.session` for the lines of no queued message
//! (connections, TLS, disconnections, warnings).
//!
//! ```text
//! Oct 10 13:55:36 mx1 postfix/smtpd[1234]: 4BkQ3x0ZzFz9sWQ: client=mail.example.org[198.51.100.7]
//! Oct 10 13:55:36 mx1 postfix/cleanup[1235]: 4BkQ3x0ZzFz9sWQ: message-id=<20241010.abc@example.org>
//! Oct 10 13:55:36 mx1 postfix/qmgr[1236]: 4BkQ3x0ZzFz9sWQ: from=<alice@example.org>, size=2345, nrcpt=1 (queue active)
//! Oct 10 13:55:37 mx1 postfix/smtp[1237]: 4BkQ3x0ZzFz9sWQ: to=<bob@example.net>, relay=mx.example.net[203.0.113.9]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 9F2A1)
//! Oct 10 13:55:37 mx1 postfix/qmgr[1236]: 4BkQ3x0ZzFz9sWQ: removed
//! Oct 10 13:56:01 mx1 postfix/smtpd[1240]: NOQUEUE: reject: RCPT from unknown[192.0.2.99]: 554 5.7.1 <spam@example.org>: Relay access denied; from=<x@example.com> to=<spam@example.org> proto=ESMTP helo=<bad>
//! Oct 10 13:56:02 mx1 postfix/smtpd[1240]: connect from unknown[192.0.2.99]
//! ```
//!
//! Postfix writes one message over several lines keyed by its queue id.
//! Correlation: the parser remembers, per queue id, the client, Message-ID,
//! sender and size from the lines that state them, and adds them to each
//! delivery line of that queue id; `removed` forgets the queue id. The
//! table holds at most [`MAX_QUEUED_MESSAGES`] queue ids, the oldest is
//! forgotten first, so memory stays bounded whatever the log holds. Every
//! line is still sealed on its own (`mail.queue` with `queue_id`), so what a
//! forgotten or pre-restart queue id stated stays in the trail and a
//! delivery without its sender can be joined by `queue_id` later.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use super::fields::{ParseOptions, Unrecognised, failure, text_field};
use super::syslog;
use crate::HostingAction;
use crate::event::{Actor, Event, EventBuilder};

/// The most queue ids the Postfix parser remembers at once.
pub const MAX_QUEUED_MESSAGES: usize = 10_000;

/// What earlier lines said about a queued message.
#[derive(Clone, Debug, Default)]
struct Queued {
    client: Option<String>,
    message_id: Option<String>,
    sender: Option<String>,
    size: Option<u64>,
}

/// Queue id → what is known, bounded to [`MAX_QUEUED_MESSAGES`].
#[derive(Debug, Default)]
pub(super) struct QueueTable {
    messages: HashMap<String, Queued>,
    order: VecDeque<String>,
}

impl QueueTable {
    fn entry(&mut self, queue_id: &str) -> &mut Queued {
        if !self.messages.contains_key(queue_id) {
            while self.messages.len() >= MAX_QUEUED_MESSAGES {
                match self.order.pop_front() {
                    Some(oldest) => {
                        self.messages.remove(&oldest);
                    }
                    None => self.messages.clear(),
                }
            }
            self.order.push_back(queue_id.to_owned());
        }
        self.messages.entry(queue_id.to_owned()).or_default()
    }

    fn forget(&mut self, queue_id: &str) {
        if self.messages.remove(queue_id).is_some() {
            self.order.retain(|id| id != queue_id);
        }
    }
}

pub(super) fn parse(
    line: &str,
    options: &ParseOptions,
    queue: &mut QueueTable,
) -> Result<EventBuilder, Unrecognised> {
    let syslog = syslog::split(line, options).ok_or("no syslog header")?;
    if !syslog.program.starts_with("postfix") {
        return Err("not a postfix line");
    }
    let message = syslog.message;
    if let Some(reject) = message.strip_prefix("NOQUEUE: ") {
        return reject_line(reject).map(|event| event.occurred_at(syslog.time));
    }
    let Some((queue_id, rest)) = message
        .split_once(": ")
        .filter(|(queue_id, _)| is_queue_id(queue_id))
    else {
        let event = session_line(message);
        let event = text_field(event, "program", syslog.program);
        return Ok(event.occurred_at(syslog.time));
    };
    let event = if rest.starts_with("to=<") {
        delivery(queue_id, rest, queue.entry(queue_id))
    } else {
        queue_line(queue_id, rest, queue)
    };
    let event = text_field(event.meta("queue_id", queue_id), "program", syslog.program);
    Ok(event.occurred_at(syslog.time))
}

/// A queue id: 5 to 32 letters and digits (short or long ids).
fn is_queue_id(text: &str) -> bool {
    (5..=32).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A line of no queued message (`connect from host[ip]`, `TLS connection
/// established from …`, `warning: …`): `mail.session` with the first
/// `host[ip]` it names as peer.
fn session_line(message: &str) -> EventBuilder {
    let mut event =
        Event::builder(HostingAction::MailSession.name()).actor(Actor::system("postfix"));
    let peer = message
        .split(' ')
        .map(|word| host_and_ip(word.trim_end_matches([':', ','])))
        .find(|(host, ip)| ip.is_some() && !host.is_empty());
    if let Some((host, Some(ip))) = peer {
        // Postfix names a peer without reverse DNS `unknown`.
        let target = if host == "unknown" {
            ip.to_string()
        } else {
            host.to_owned()
        };
        event = text_field(event.target("peer", target), "peer_host", host).ip(ip);
    }
    text_field(event, "text", message)
}

/// `key=value` of a comma-separated Postfix line; `<…>` stripped.
pub(super) fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let mut search = 0;
    while let Some(found) = text[search..].find(key) {
        let start = search + found;
        let at_boundary = start == 0 || matches!(text.as_bytes()[start - 1], b' ' | b',');
        let value_start = start + key.len();
        if at_boundary && text[value_start..].starts_with('=') {
            let value = &text[value_start + 1..];
            if let Some(angled) = value.strip_prefix('<') {
                return angled.find('>').map(|end| &angled[..end]);
            }
            let end = value.find([',', ' ']).unwrap_or(value.len());
            return Some(&value[..end]);
        }
        search = value_start;
    }
    None
}

/// `host[ip]` or `host[ip]:port`.
pub(super) fn host_and_ip(text: &str) -> (&str, Option<IpAddr>) {
    match text.split_once('[') {
        Some((host, rest)) => {
            let ip = rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
            (host, ip)
        }
        None => (text, None),
    }
}

fn delivery(queue_id: &str, rest: &str, known: &Queued) -> EventBuilder {
    let recipient = field(rest, "to").unwrap_or("");
    let status = field(rest, "status").unwrap_or("unknown");
    let status_text = rest
        .find("status=")
        .and_then(|i| rest[i..].split_once(" ("))
        .map(|(_, text)| text.strip_suffix(')').unwrap_or(text));
    let sender = known.sender.as_deref().unwrap_or("");
    let mut event = Event::builder(HostingAction::MailDelivery.name())
        .actor(sender_actor(sender))
        .target("message", known.message_id.as_deref().unwrap_or(queue_id));
    event = text_field(event, "sender", sender);
    event = text_field(event, "recipient", recipient);
    if let Some(size) = known.size {
        event = event.meta("size", size);
    }
    if let Some(relay) = field(rest, "relay") {
        let (host, ip) = host_and_ip(relay);
        event = text_field(event, "peer_host", host);
        if let Some(ip) = ip {
            event = event.ip(ip);
        }
    }
    if let Some(client) = &known.client {
        event = text_field(event, "client", client);
    }
    if let Some(message_id) = &known.message_id {
        event = text_field(event, "message_id", message_id);
    }
    if let Some(dsn) = field(rest, "dsn") {
        event = text_field(event, "dsn", dsn);
    }
    event = text_field(event, "status", status);
    match (status, status_text) {
        ("sent", Some(text)) => text_field(event, "status_text", text),
        ("sent", None) => event,
        (_, text) => failure(event, text.unwrap_or(status)),
    }
}

fn queue_line(queue_id: &str, rest: &str, queue: &mut QueueTable) -> EventBuilder {
    let mut event = Event::builder(HostingAction::MailQueue.name()).actor(Actor::system("postfix"));
    if rest == "removed" {
        queue.forget(queue_id);
        return text_field(event.meta("state", "removed"), "text", rest);
    }
    let known = queue.entry(queue_id);
    if let Some(client) = field(rest, "client") {
        known.client = Some(client.to_owned());
        let (host, ip) = host_and_ip(client);
        event = text_field(event, "peer_host", host);
        if let Some(ip) = ip {
            event = event.ip(ip);
        }
    }
    if let Some(message_id) = field(rest, "message-id") {
        known.message_id = Some(message_id.to_owned());
        event = text_field(event, "message_id", message_id);
    }
    if let Some(sender) = field(rest, "from") {
        known.sender = Some(sender.to_owned());
        event = text_field(event, "sender", sender);
    }
    if let Some(size) = field(rest, "size").and_then(|s| s.parse::<u64>().ok()) {
        known.size = Some(size);
        event = event.meta("size", size);
    }
    text_field(event, "text", rest)
}

/// `reject: RCPT from host[ip]: 554 5.7.1 <…>: reason; from=<…> to=<…> …`
fn reject_line(text: &str) -> Result<EventBuilder, Unrecognised> {
    let rest = text
        .strip_prefix("reject: ")
        .ok_or("NOQUEUE line not a reject")?;
    let (stage, rest) = rest.split_once(" from ").ok_or("reject without client")?;
    let (client, rest) = rest.split_once(": ").ok_or("reject without reason")?;
    let (reason, envelope) = rest.rsplit_once("; ").unwrap_or((rest, ""));
    let sender = field(envelope, "from").unwrap_or("");
    let recipient = field(envelope, "to").unwrap_or("");
    let (host, ip) = host_and_ip(client);
    let mut event = Event::builder(HostingAction::MailDelivery.name())
        .actor(sender_actor(sender))
        .target("message", "NOQUEUE");
    event = text_field(event, "sender", sender);
    event = text_field(event, "recipient", recipient);
    event = text_field(event, "peer_host", host);
    event = text_field(event, "stage", stage);
    if let Some(ip) = ip {
        event = event.ip(ip);
    }
    Ok(failure(text_field(event, "status", "reject"), reason))
}

/// The sender as actor; the null sender (bounces) is Postfix itself.
fn sender_actor(sender: &str) -> Actor {
    if sender.is_empty() {
        Actor::system("postfix")
    } else {
        Actor::anonymous(sender)
    }
}
