//! Web access logs (trail `web`, action `web.request`).
//!
//! The Combined Log Format of Apache and nginx, optionally led by the
//! virtual host (Apache's `vhost_combined`, `%v:%p`, or nginx's `$host`):
//!
//! ```text
//! 203.0.113.5 - alice [10/Oct/2024:13:55:36 +0200] "GET /shop/?id=7 HTTP/1.1" 200 2326 "https://example.org/" "Mozilla/5.0 (X11; Linux x86_64)"
//! example.org:443 203.0.113.5 - - [10/Oct/2024:13:55:36 +0200] "GET / HTTP/2.0" 304 0 "-" "curl/8.5.0"
//! ```
//!
//! The Common Log Format (without referrer and user agent) parses too.
//! Fields: the domain (virtual host, else [`ParseOptions::default_domain`])
//! as target, visitor IP, time, `.htaccess` user (as actor and
//! `htaccess_user`; an anonymous `visitor` otherwise), `method`, `request`
//! (path + query), `protocol`, `status`, `bytes`, `referrer`, user agent.
//! Quoted fields are kept as the server escaped them (`\"`, `\x1b`); a
//! `password=` in a query string is masked.

use std::net::IpAddr;

use super::fields::{ParseOptions, Unrecognised, mask_passwords, text_field};
use super::time;
use crate::HostingAction;
use crate::event::{Actor, Event, EventBuilder};

pub(super) fn parse(line: &str, options: &ParseOptions) -> Result<EventBuilder, Unrecognised> {
    let open = line.find(" [").ok_or("no [time] field")?;
    let mut head = line[..open].split(' ');
    let fields: [Option<&str>; 5] = [
        head.next(),
        head.next(),
        head.next(),
        head.next(),
        head.next(),
    ];
    let (vhost, host, user) = match fields {
        [Some(host), Some(_ident), Some(user), None, None] => (None, host, user),
        [Some(vhost), Some(host), Some(_ident), Some(user), None] => (Some(vhost), host, user),
        _ => return Err("not host, ident and user before the time"),
    };
    let rest = &line[open + 2..];
    let close = rest.find("] ").ok_or("unterminated [time] field")?;
    let time = time::clf(&rest[..close]).ok_or("time not in the Common Log Format")?;
    let rest = &rest[close + 2..];
    let (request, rest) = quoted(rest).ok_or("request not quoted")?;
    let rest = rest
        .strip_prefix(' ')
        .ok_or("no status after the request")?;
    let (status, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let status: u16 = match status.as_bytes() {
        [a, b, c] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
            status.parse().map_err(|_| "status not a number")?
        }
        _ => return Err("status not three digits"),
    };
    let (bytes, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let bytes: u64 = match bytes {
        "-" => 0,
        digits => digits.parse().map_err(|_| "bytes not a number")?,
    };
    let (referrer, user_agent) = if rest.is_empty() {
        (None, None)
    } else {
        let (referrer, rest) = quoted(rest).ok_or("referrer not quoted")?;
        let rest = rest
            .strip_prefix(' ')
            .ok_or("no user agent after the referrer")?;
        let (user_agent, _extra) = quoted(rest).ok_or("user agent not quoted")?;
        (Some(referrer), Some(user_agent))
    };

    let mut event = Event::builder(HostingAction::WebRequest.name());
    event = match user {
        "-" | "" => event.actor(Actor::anonymous("visitor")),
        user => event.actor(Actor::anonymous(user)).htaccess_user(user),
    };
    let domain = match vhost {
        Some(vhost) => Some(vhost.rsplit_once(':').map_or(vhost, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                vhost
            }
        })),
        None => options.default_domain.as_deref(),
    };
    if let Some(domain) = domain.filter(|d| !d.is_empty() && *d != "-") {
        event = event.target("domain", domain);
    }
    event = match host.parse::<IpAddr>() {
        Ok(ip) => event.ip(ip),
        Err(_) => text_field(event, "client_host", host),
    };
    let mut parts = request.splitn(3, ' ');
    event = match (parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), Some(protocol))
            if protocol.starts_with("HTTP/") && !method.is_empty() =>
        {
            let event = text_field(event, "method", method);
            let event = text_field(event, "request", &mask_passwords(target));
            text_field(event, "protocol", protocol)
        }
        // Garbage requests (TLS on port 80, scanners) are still requests.
        _ => text_field(event, "request", &mask_passwords(request)),
    };
    event = event
        .occurred_at(time)
        .meta("status", status)
        .meta("bytes", bytes);
    if let Some(referrer) = referrer.filter(|r| *r != "-") {
        event = text_field(event, "referrer", &mask_passwords(referrer));
    }
    if let Some(user_agent) = user_agent.filter(|u| *u != "-") {
        event = super::fields::user_agent(event, user_agent);
    }
    Ok(event)
}

/// A double-quoted field at the start of `text`, as Apache writes it
/// (`\"` and `\\` escaped): its content and what follows the closing quote.
fn quoted(text: &str) -> Option<(&str, &str)> {
    let body = text.strip_prefix('"')?;
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some((&body[..i], &body[i + 1..])),
            _ => i += 1,
        }
    }
    None
}
