//! PHP's `mail.log` (trail `php-mail`, action `php_mail.send`): one line
//! per `mail()` call, headers joined by spaces.
//!
//! ```text
//! [10-Oct-2024 13:55:36 UTC] mail() on [/var/www/example.org/htdocs/contact.php:42]: To: bob@example.net -- Headers: From: Shop <shop@example.org> X-Mailer: PHP/8.2.7 Message-ID: <c0ffee@example.org> -- Subject: Your order
//! ```
//!
//! Fields: the script path (target, `line` its line number), time (when
//! the line has one; logged to syslog it has none), `recipient`, `sender`
//! (the `From:` address), `message_id`, `x_mailer`, `subject`.

use super::fields::{ParseOptions, Unrecognised, text_field};
use super::time;
use crate::HostingAction;
use crate::event::{Actor, Event, EventBuilder};

pub(super) fn parse(line: &str, options: &ParseOptions) -> Result<EventBuilder, Unrecognised> {
    let (time, rest) = match line.strip_prefix('[') {
        Some(rest) => {
            let (stamp, rest) = rest.split_once("] ").ok_or("unterminated time")?;
            let time = time::php(stamp, options.utc_offset).ok_or("time not in PHP's format")?;
            (Some(time), rest)
        }
        None => (None, line),
    };
    let rest = rest
        .strip_prefix("mail() on [")
        .ok_or("not a mail() line")?;
    let (location, rest) = rest.split_once("]: ").ok_or("no script location")?;
    let (script, line_no) = location
        .rsplit_once(':')
        .and_then(|(script, n)| Some((script, n.parse::<u64>().ok()?)))
        .unwrap_or((location, 0));
    let rest = rest.strip_prefix("To: ").ok_or("no To:")?;
    let (to, rest) = rest.split_once(" -- Headers: ").unwrap_or((rest, ""));
    let (headers, subject) = rest.split_once(" -- Subject: ").unwrap_or((rest, ""));
    let sender = header(headers, "From").map(address);
    let mut event = Event::builder(HostingAction::PhpMailSend.name())
        .actor(Actor::system("php"))
        .target("script", script)
        .meta("line", line_no);
    event = text_field(event, "recipient", to);
    if let Some(sender) = sender {
        event = text_field(event, "sender", sender);
    }
    if let Some(message_id) = header(headers, "Message-ID").map(address) {
        event = text_field(event, "message_id", message_id);
    }
    if let Some(mailer) = header(headers, "X-Mailer") {
        event = text_field(event, "x_mailer", mailer);
    }
    if !subject.is_empty() {
        event = text_field(event, "subject", subject);
    }
    Ok(match time {
        Some(time) => event.occurred_at(time),
        None => event,
    })
}

/// The value of header `name` in space-joined headers: up to the next
/// ` Name: ` (a token of letters, digits and `-` followed by `: `).
fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    let bytes = headers.as_bytes();
    let mut start = None;
    let mut i = 0;
    while i + name.len() < bytes.len() {
        let at_boundary = i == 0 || bytes[i - 1] == b' ';
        if at_boundary
            && bytes[i..i + name.len()].eq_ignore_ascii_case(name.as_bytes())
            && headers[i + name.len()..].starts_with(": ")
        {
            start = Some(i + name.len() + 2);
            break;
        }
        i += 1;
    }
    let start = start?;
    let value = &headers[start..];
    let end = value
        .match_indices(' ')
        .find(|&(at, _)| {
            let next = &value[at + 1..];
            let token = next.find(": ").map(|n| &next[..n]);
            token.is_some_and(|t| {
                !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
        })
        .map_or(value.len(), |(at, _)| at);
    Some(value[..end].trim())
}

/// The address in `Name <address>`, else the whole value.
fn address(value: &str) -> &str {
    match (value.rfind('<'), value.rfind('>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => value,
    }
}
