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
//!
//! Which layout a line has is decided per line, from the fields before the
//! time, in this order (see `head_fields`):
//!
//! 1. a first field that is an IP address (v4 or v6) is the client:
//!    `client ident user`, the user being everything up to the time, so a
//!    Basic-auth user name with spaces stays one user;
//! 2. a first field that looks like a host name, with an optional numeric
//!    `:port`, followed by a client (an IP address or a host name, never
//!    `-`) and the ident, is the virtual host: `vhost client ident user`;
//! 3. anything else is a client given by name (`HostnameLookups On`).
//!
//! The time is the first `[…]` that holds a time in the Common Log Format,
//! so a user name with brackets does not end the fields early. A user in
//! double quotes is unquoted; `-` user, bytes, referrer and agent mean
//! none (bytes 0). One ambiguity stays: a client given by name followed by
//! an ident other than `-` (identd is off almost everywhere) reads as a
//! virtual host.
//!
//! Fields: the domain (virtual host, else [`ParseOptions::default_domain`])
//! as target, visitor IP, time, `.htaccess` user (as actor and
//! `htaccess_user`; an anonymous `visitor` otherwise), `method`, `request`
//! (path + query), `protocol`, `status`, `bytes`, `referrer`, user agent.
//! Quoted fields are kept as the server escaped them (`\"`, `\x1b`); a
//! `password=` in a query string is masked.

use std::net::IpAddr;

use super::fields::{self, ParseOptions, Unrecognised, mask_passwords, text_field};
use super::time;
use crate::HostingAction;
use crate::event::{Actor, Event, EventBuilder};
use chrono::{DateTime, Utc};

pub(super) fn parse(line: &str, options: &ParseOptions) -> Result<EventBuilder, Unrecognised> {
    let (head, time, rest) = split_at_time(line)?;
    let Head {
        vhost,
        client,
        user,
    } = head_fields(head)?;
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
    let domain = vhost.or(options.default_domain.as_deref());
    if let Some(domain) = domain.filter(|d| !d.is_empty() && *d != "-") {
        event = event.target("domain", domain);
    }
    event = match client.parse::<IpAddr>() {
        Ok(ip) => event.ip(ip),
        Err(_) => text_field(event, "client_host", client),
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
        event = fields::user_agent(event, user_agent);
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

/// The line cut around its `[time]` field: what precedes it, the time, and
/// what follows it. The time field is the first ` [` whose content is a
/// Common Log Format time, so a user name holding ` [` cannot take its place.
fn split_at_time(line: &str) -> Result<(&str, DateTime<Utc>, &str), Unrecognised> {
    let mut why = "no [time] field";
    for (open, _) in line.match_indices(" [") {
        let rest = &line[open + 2..];
        let Some(close) = rest.find("] ") else {
            why = "unterminated [time] field";
            break;
        };
        match time::clf(&rest[..close]) {
            Some(time) => return Ok((&line[..open], time, &rest[close + 2..])),
            None => why = "time not in the Common Log Format",
        }
    }
    Err(why)
}

/// What precedes the time: the virtual host if the log has one, the
/// client, and the `.htaccess` user (`-` for none).
#[derive(Debug, PartialEq, Eq)]
struct Head<'a> {
    vhost: Option<&'a str>,
    client: &'a str,
    user: &'a str,
}

/// Splits the fields before the time, trying the layouts in this order:
///
/// 1. A first field that is an IP address is the client: Combined
///    (`client ident user`), the user being all that follows the ident, so
///    a user name with spaces stays one user.
/// 2. A first field that looks like a host name (with an optional
///    `:port`), followed by a client and an ident, is a virtual host:
///    `vhost client ident user`. A client is never `-`.
/// 3. Otherwise the first field is a client given by name
///    (`HostnameLookups On`): `client ident user`.
///
/// A user in double quotes (`"%u"` in some log formats) is unquoted.
fn head_fields(head: &str) -> Result<Head<'_>, Unrecognised> {
    let (first, rest) = head.split_once(' ').ok_or("no client, ident and user")?;
    let combined = |client| -> Result<Head<'_>, Unrecognised> {
        let (_ident, user) = rest.split_once(' ').ok_or("no ident and user")?;
        Ok(Head {
            vhost: None,
            client,
            user: unquoted(user),
        })
    };
    if first.parse::<IpAddr>().is_ok() {
        return combined(first);
    }
    if let Some(name) = vhost_name(first)
        && let Some((client, after_client)) = rest.split_once(' ')
        && client != "-"
        && (client.parse::<IpAddr>().is_ok() || vhost_name(client) == Some(client))
        && let Some((_ident, user)) = after_client.split_once(' ')
    {
        return Ok(Head {
            vhost: Some(name),
            client,
            user: unquoted(user),
        });
    }
    if first.is_empty() || first == "-" {
        return Err("no client before the time");
    }
    combined(first)
}

/// The host name of a virtual host field (`example.org`, `example.org:443`),
/// or `None` when the field does not look like one: letters, digits, `-`,
/// `_` and dots, at most 253 bytes, with an optional numeric port.
fn vhost_name(field: &str) -> Option<&str> {
    let name = match field.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return None,
        None => field,
    };
    let valid = !name.is_empty()
        && name.len() <= 253
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    valid.then_some(name)
}

/// `"a b"` → `a b`; anything else unchanged.
fn unquoted(user: &str) -> &str {
    user.strip_prefix('"')
        .and_then(|u| u.strip_suffix('"'))
        .unwrap_or(user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Event;

    fn event(line: &str) -> Event {
        parse(line, &ParseOptions::default())
            .expect("parses")
            .build()
            .expect("valid")
    }

    /// (domain, client IP or name, actor, `.htaccess` user)
    fn who(event: &Event) -> (Option<&str>, String, &str, Option<&str>) {
        let client = match (event.context.ip, event.metadata.get("client_host")) {
            (Some(ip), None) => ip.to_string(),
            (None, Some(host)) => format!("name:{}", host.as_str().unwrap()),
            other => panic!("client {other:?}"),
        };
        (
            event.target.as_ref().map(|t| t.id.as_str()),
            client,
            event.actor.as_ref().unwrap().name.as_str(),
            event.context.htaccess_user.as_deref(),
        )
    }

    const TAIL: &str = r#"[08/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "curl""#;

    #[test]
    fn a_user_name_with_a_space_is_one_user_of_a_combined_line() {
        let line = format!("127.0.0.1 - a b {TAIL}");
        assert_eq!(
            who(&event(&line)),
            (None, "127.0.0.1".into(), "a b", Some("a b"))
        );
        let line = format!("2001:db8::7 - a b c {TAIL}");
        assert_eq!(
            who(&event(&line)),
            (None, "2001:db8::7".into(), "a b c", Some("a b c"))
        );
    }

    #[test]
    fn ipv6_clients_are_clients_never_virtual_hosts() {
        for (line, expected) in [
            (
                format!("2001:db8::1 - - {TAIL}"),
                (None, "2001:db8::1".to_owned(), "visitor", None),
            ),
            (
                format!("::1 - alice {TAIL}"),
                (None, "::1".to_owned(), "alice", Some("alice")),
            ),
            // An IP address first is the client, even with four fields.
            (
                format!("192.0.2.9 - x y {TAIL}"),
                (None, "192.0.2.9".to_owned(), "x y", Some("x y")),
            ),
            (
                format!("::ffff:192.0.2.1 - a b {TAIL}"),
                (None, "::ffff:192.0.2.1".to_owned(), "a b", Some("a b")),
            ),
            (
                format!("example.org:443 2001:db8::3 - a b {TAIL}"),
                (
                    Some("example.org"),
                    "2001:db8::3".to_owned(),
                    "a b",
                    Some("a b"),
                ),
            ),
            (
                format!("example.org 2001:db8::2 - - {TAIL}"),
                (
                    Some("example.org"),
                    "2001:db8::2".to_owned(),
                    "visitor",
                    None,
                ),
            ),
        ] {
            assert_eq!(who(&event(&line)), expected, "{line}");
        }
    }

    #[test]
    fn a_virtual_host_with_a_port_names_the_domain() {
        let line = format!("shop.example.net:443 203.0.113.5 - kunde123 {TAIL}");
        assert_eq!(
            who(&event(&line)),
            (
                Some("shop.example.net"),
                "203.0.113.5".into(),
                "kunde123",
                Some("kunde123")
            )
        );
        // A virtual host with a user name with spaces.
        let line = format!("example.org:80 203.0.113.5 - a b {TAIL}");
        assert_eq!(
            who(&event(&line)),
            (
                Some("example.org"),
                "203.0.113.5".into(),
                "a b",
                Some("a b")
            )
        );
        // Not a port: not a virtual host, so a client given by name.
        assert_eq!(
            head_fields("example.org:https 203.0.113.5 - -"),
            Ok(Head {
                vhost: None,
                client: "example.org:https",
                user: "- -"
            })
        );
    }

    #[test]
    fn clients_given_by_name_and_dash_fields() {
        // HostnameLookups On: a client name, ident `-`, user with a space.
        let line = format!("client.example.net - a b {TAIL}");
        assert_eq!(
            who(&event(&line)),
            (None, "name:client.example.net".into(), "a b", Some("a b"))
        );
        // A virtual host and a client by name.
        let line = format!("example.org client.example.net - - {TAIL}");
        assert_eq!(
            who(&event(&line)),
            (
                Some("example.org"),
                "name:client.example.net".into(),
                "visitor",
                None
            )
        );
        // `-` user, bytes, referrer and agent: none recorded, bytes 0.
        let event =
            event(r#"203.0.113.5 - - [08/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 304 - "-" "-""#);
        assert_eq!(event.actor.as_ref().unwrap().name, "visitor");
        assert_eq!(event.metadata["bytes"], 0);
        assert!(!event.metadata.contains_key("referrer"));
        assert_eq!(event.context.user_agent, None);
        // A line that starts with `-` has no client.
        assert_eq!(head_fields("- - -"), Err("no client before the time"));
    }

    #[test]
    fn a_quoted_user_or_one_with_brackets_is_unquoted_and_kept_whole() {
        let line = format!("203.0.113.5 - \"a b\" {TAIL}");
        assert_eq!(
            who(&event(&line)),
            (None, "203.0.113.5".into(), "a b", Some("a b"))
        );
        // ` [` inside the user name is not the time field.
        let line = format!("203.0.113.5 - a [b] {TAIL}");
        assert_eq!(
            who(&event(&line)),
            (None, "203.0.113.5".into(), "a [b]", Some("a [b]"))
        );
    }

    #[test]
    fn every_field_of_a_combined_line() {
        let event = event(
            r#"203.0.113.5 - alice [10/Oct/2024:13:55:36 +0200] "GET /shop/?id=7&password=x HTTP/1.1" 200 2326 "https://example.org/" "Mozilla/5.0 (X11)""#,
        );
        assert_eq!(event.action, "web.request");
        assert_eq!(
            event.occurred_at.unwrap().to_rfc3339(),
            "2024-10-10T11:55:36+00:00"
        );
        let meta = serde_json::Value::Object(event.metadata.clone());
        assert_eq!(
            meta,
            serde_json::json!({
                "method": "GET",
                "request": "/shop/?id=7&password=[secret]",
                "protocol": "HTTP/1.1",
                "status": 200,
                "bytes": 2326,
                "referrer": "https://example.org/",
            })
        );
        assert_eq!(
            event.context.user_agent.as_deref(),
            Some("Mozilla/5.0 (X11)")
        );
    }

    #[test]
    fn a_user_agent_is_cut_after_escaping_with_its_length() {
        let agent = "\u{1b}".repeat(2048);
        let line = format!(
            r#"203.0.113.5 - - [08/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "{agent}""#
        );
        let parsed = event(&line);
        let stored = parsed.context.user_agent.as_deref().unwrap();
        // 256 escapes of 8 bytes: exactly the limit, no escape cut in two.
        assert_eq!(stored.len(), 2048);
        assert_eq!(stored, "\\u{001B}".repeat(256));
        assert_eq!(parsed.metadata["user_agent_len"], 2048);
        // Sealing escapes it again, which changes nothing.
        assert_eq!(crate::model::escape_text(stored), stored);
        // A short agent has no length recorded.
        let short = event(&format!("203.0.113.5 - - {TAIL}"));
        assert!(!short.metadata.contains_key("user_agent_len"));
    }
}
