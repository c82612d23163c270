//! The body an event is sealed as: which of its fields are personal (each
//! with its own salt, so it can be erased) and which public, with free text
//! escaped.

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::canonical_json::{canonical_json, canonical_json_object};
use super::validation::check_metadata_len;
use super::{Change, Event, Outcome, ValidationError};
use crate::model::{Body, Salt, escape_text, format_timestamp, truncate_to_micros};

impl Event {
    /// Validates the event and builds the body it is sealed as, each
    /// personal field with a fresh salt from `salts`. The same checks as
    /// [`Event::validate`], with the canonical metadata built only once.
    pub(crate) fn to_checked_body(
        &self,
        salts: &mut impl FnMut() -> Salt,
    ) -> Result<Body, ValidationError> {
        self.validate_fields()?;
        let body = self.to_body(salts);
        check_metadata_len(body.value("metadata").map_or(0, str::len))?;
        Ok(body)
    }

    /// The body this event is sealed as, each personal field with a fresh
    /// salt from `salts`. Call [`Event::validate`] first.
    fn to_body(&self, salts: &mut impl FnMut() -> Salt) -> Body {
        let mut body = Body::new();
        body.insert_public("action", self.action.as_ref());
        if let Some(actor) = &self.actor {
            body.insert_public("actor.kind", actor.kind.as_str());
            body.insert_personal("actor.name", actor.name.as_str(), salts());
        }
        if let Some(impersonator) = &self.impersonator {
            body.insert_public("impersonator.kind", impersonator.kind.as_str());
            body.insert_personal("impersonator.name", impersonator.name.as_str(), salts());
        }
        if let Some(tenant) = &self.tenant {
            body.insert_personal("tenant", tenant.as_str(), salts());
        }
        if let Some(target) = &self.target {
            body.insert_public("target.type", target.kind.as_str());
            body.insert_personal("target.id", target.id.as_str(), salts());
        }
        body.insert_public("outcome", self.outcome.as_str());
        if let Outcome::Failure { reason } = &self.outcome {
            body.insert_personal("outcome.reason", escape_text(reason), salts());
        }
        let context = &self.context;
        if let Some(ip) = context.ip {
            body.insert_personal("context.ip", ip.to_string(), salts());
            // Kept when retention anonymises the address by erasing
            // `context.ip`.
            body.insert_personal("context.network", network_of(ip), salts());
        }
        if let Some(user_agent) = &context.user_agent {
            body.insert_personal("context.user_agent", escape_text(user_agent), salts());
        }
        if let Some(request_id) = &context.request_id {
            body.insert_public("context.request_id", request_id.as_str());
        }
        if let Some(user) = &context.htaccess_user {
            body.insert_personal("context.htaccess_user", user.as_str(), salts());
        }
        if let Some(source) = context.source {
            body.insert_public("context.source", source.as_str());
        }
        if !self.changes.is_empty() {
            body.insert_personal("changes", changes_json(&self.changes), salts());
        }
        if !self.metadata.is_empty() {
            body.insert_personal("metadata", canonical_json_object(&self.metadata), salts());
        }
        if let Some(time) = self.occurred_at {
            body.insert_public("occurred_at", format_timestamp(truncate_to_micros(time)));
        }
        if let Some(location) = &self.location {
            body.insert_public("location.module", location.module.as_ref());
            body.insert_public("location.file", location.file.as_ref());
            body.insert_public("location.line", location.line.to_string());
        }
        body
    }
}

/// The anonymised network of an address: IPv4 /24, IPv6 /48.
pub fn network_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[3..].fill(0);
            format!("{}/48", std::net::Ipv6Addr::from(segments))
        }
    }
}

fn changes_json(changes: &[Change]) -> String {
    let items = changes
        .iter()
        .map(|change| {
            let mut map = Map::new();
            map.insert("field".into(), Value::String(change.field.clone()));
            let text = |v: &Option<String>| {
                v.as_deref()
                    .map_or(Value::Null, |s| Value::String(escape_text(s).into_owned()))
            };
            map.insert("old".into(), text(&change.old));
            map.insert("new".into(), text(&change.new));
            Value::Object(map)
        })
        .collect();
    canonical_json(&Value::Array(items))
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::event::{Actor, Location, Source};

    #[test]
    fn free_text_is_escaped_when_sealed() {
        let event = Event::builder("database.create")
            .actor(Actor::customer("kunde123"))
            .user_agent("evil\nINJECTED \u{1b}[2J")
            .build()
            .unwrap();
        let body = event.to_body(&mut || Salt::from_bytes([0; 16]));
        assert_eq!(
            body.value("context.user_agent"),
            Some("evil\\nINJECTED \\u{001B}[2J")
        );
    }

    #[test]
    fn every_field_an_event_writes_is_a_known_name_for_decoding() {
        let event = Event::builder("database.create")
            .actor(Actor::customer("kunde123"))
            .impersonator(Actor::admin("support"))
            .tenant("kunde123")
            .target("database", "shop_db")
            .failure("quota exceeded")
            .ip([192, 0, 2, 1].into())
            .user_agent("curl/8.5.0")
            .request_id("req-1")
            .htaccess_user("redaktion")
            .source(Source::Api)
            .change("size_mb", Some("100".into()), Some("200".into()))
            .meta("plan", "basic")
            .occurred_at(Utc::now())
            .location(Location {
                module: "panel".into(),
                file: "panel.rs".into(),
                line: 1,
            })
            .build()
            .unwrap();
        let body = event.to_body(&mut || Salt::from_bytes([0; 16]));
        for (name, _) in body.iter() {
            assert!(
                crate::model::EVENT_FIELD_NAMES.contains(&name),
                "{name} is missing from EVENT_FIELD_NAMES"
            );
        }
        assert_eq!(body.len(), crate::model::EVENT_FIELD_NAMES.len());
    }
}
