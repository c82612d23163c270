//! Validation that keeps hostile input out of the trail: limits on every
//! field, identifiers without control characters, action names, and
//! metadata that has one canonical encoding.

use serde_json::{Map, Value};

use super::canonical_json::canonical_json_object;
use super::{Event, Outcome, refuse_secrets};
use crate::model::{escape_text, is_dangerous};

/// Longest identifier (login name, tenant, target id, request id …), in bytes.
pub const MAX_IDENTIFIER_LEN: usize = 256;
/// Longest action name, in bytes.
pub const MAX_ACTION_LEN: usize = 128;
/// Longest free-text field (user agent, failure reason, changed value), in bytes.
pub const MAX_TEXT_LEN: usize = 4096;
/// Most changed fields one event may carry.
pub const MAX_CHANGES: usize = 64;
/// Largest metadata object, as canonical JSON, in bytes.
pub const MAX_METADATA_LEN: usize = 16 * 1024;
/// Deepest nesting of metadata objects and arrays.
pub const MAX_METADATA_DEPTH: usize = 16;

/// Why an event was refused. Nothing was recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The event has no actor: every entry must say who acted.
    #[error("the event has no actor; set one (or record as Actor::system / Actor::anonymous)")]
    MissingActor,
    /// A required field is empty.
    #[error("{field} is empty")]
    Empty {
        /// The field.
        field: &'static str,
    },
    /// A field is longer than its limit.
    #[error("{field} is {len} bytes long; the limit is {max}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// An identifier contains a control character, line break or
    /// direction override, which could forge lines in a rendering.
    #[error("{field} contains the control character U+{code:04X}; identifiers must be printable")]
    ControlCharacter {
        /// The field.
        field: &'static str,
        /// The offending code point.
        code: u32,
    },
    /// An action name is not a dotted lower-case name.
    #[error("action {0:?} is not a dotted lower-case name such as \"database.create\"")]
    InvalidAction(String),
    /// Metadata holds a floating-point number, which has no canonical encoding.
    #[error("metadata field {path} is a floating-point number; use an integer or a string")]
    Float {
        /// JSON path of the value.
        path: String,
    },
    /// Metadata nests deeper than allowed.
    #[error("metadata nests deeper than {MAX_METADATA_DEPTH} levels")]
    TooDeep,
    /// Too many changed fields.
    #[error("{count} changed fields; the limit is {MAX_CHANGES}")]
    TooManyChanges {
        /// Number of changed fields given.
        count: usize,
    },
    /// A name is reserved for a secret and may not be recorded.
    #[error("{field} names a secret ({name:?}); secrets are never recorded")]
    Secret {
        /// Where the name appeared.
        field: &'static str,
        /// The name.
        name: String,
    },
    /// The action belongs to another trail than the one it was recorded in.
    #[error("action {action} belongs to the {expected} trail, not to the {trail} trail")]
    WrongTrail {
        /// The action's name.
        action: &'static str,
        /// The trail the action belongs to.
        expected: &'static str,
        /// The trail it was recorded in.
        trail: String,
    },
    /// A metadata value could not be turned into JSON.
    #[error("metadata field {key} cannot be recorded: {reason}")]
    MetadataValue {
        /// The field.
        key: String,
        /// Why.
        reason: String,
    },
}

impl Event {
    /// Checks every field against the rules in the module docs.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.validate_fields()?;
        check_metadata_len(canonical_json_object(&self.metadata).len())
    }

    /// Every check but the length of the canonical metadata.
    pub(super) fn validate_fields(&self) -> Result<(), ValidationError> {
        validate_action(&self.action)?;
        let actor = self.actor.as_ref().ok_or(ValidationError::MissingActor)?;
        validate_identifier("actor.name", &actor.name)?;
        if let Some(impersonator) = &self.impersonator {
            validate_identifier("impersonator.name", &impersonator.name)?;
        }
        validate_optional_identifier("tenant", self.tenant.as_deref())?;
        if let Some(target) = &self.target {
            validate_identifier("target.type", &target.kind)?;
            validate_identifier("target.id", &target.id)?;
        }
        if let Outcome::Failure { reason } = &self.outcome {
            validate_text("outcome.reason", reason)?;
        }
        validate_optional_identifier("context.request_id", self.context.request_id.as_deref())?;
        validate_optional_identifier(
            "context.htaccess_user",
            self.context.htaccess_user.as_deref(),
        )?;
        if let Some(user_agent) = &self.context.user_agent {
            validate_text("context.user_agent", user_agent)?;
        }
        if self.changes.len() > MAX_CHANGES {
            return Err(ValidationError::TooManyChanges {
                count: self.changes.len(),
            });
        }
        for change in &self.changes {
            validate_identifier("changes.field", &change.field)?;
            for value in [&change.old, &change.new].into_iter().flatten() {
                validate_text("changes.value", value)?;
            }
        }
        validate_metadata_values(&self.metadata)?;
        refuse_secrets(&self.metadata, &self.changes)?;
        Ok(())
    }
}

fn validate_action(action: &str) -> Result<(), ValidationError> {
    if action.len() > MAX_ACTION_LEN {
        return Err(ValidationError::TooLong {
            field: "action",
            len: action.len(),
            max: MAX_ACTION_LEN,
        });
    }
    let valid_segment = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    if action.split('.').all(valid_segment) {
        Ok(())
    } else {
        Err(ValidationError::InvalidAction(
            escape_text(action).into_owned(),
        ))
    }
}

/// Identifiers are rejected, not escaped: a login name with a newline is an
/// attack, not data.
fn validate_identifier(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::Empty { field });
    }
    if value.len() > MAX_IDENTIFIER_LEN {
        return Err(ValidationError::TooLong {
            field,
            len: value.len(),
            max: MAX_IDENTIFIER_LEN,
        });
    }
    match value.chars().find(|&c| is_dangerous(c)) {
        Some(c) => Err(ValidationError::ControlCharacter {
            field,
            code: c as u32,
        }),
        None => Ok(()),
    }
}

fn validate_optional_identifier(
    field: &'static str,
    value: Option<&str>,
) -> Result<(), ValidationError> {
    value.map_or(Ok(()), |value| validate_identifier(field, value))
}

/// Free text is kept but escaped when sealed; only its length is limited.
fn validate_text(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.len() > MAX_TEXT_LEN {
        return Err(ValidationError::TooLong {
            field,
            len: value.len(),
            max: MAX_TEXT_LEN,
        });
    }
    Ok(())
}

/// Keys, floats and depth of the metadata; its length is checked apart.
fn validate_metadata_values(metadata: &Map<String, Value>) -> Result<(), ValidationError> {
    fn walk(value: &Value, path: &mut String, depth: usize) -> Result<(), ValidationError> {
        if depth > MAX_METADATA_DEPTH {
            return Err(ValidationError::TooDeep);
        }
        match value {
            Value::Number(number) if number.is_f64() => Err(ValidationError::Float {
                path: escape_text(path).into_owned(),
            }),
            Value::Array(items) => items
                .iter()
                .try_for_each(|item| walk(item, path, depth + 1)),
            Value::Object(map) => map.iter().try_for_each(|(key, item)| {
                let len = path.len();
                path.push('.');
                path.push_str(key);
                let result = walk(item, path, depth + 1);
                path.truncate(len);
                result
            }),
            _ => Ok(()),
        }
    }
    let mut path = String::from("metadata");
    for (key, value) in metadata {
        validate_identifier("metadata key", key)?;
        path.truncate("metadata".len());
        path.push('.');
        path.push_str(key);
        walk(value, &mut path, 1)?;
    }
    Ok(())
}

/// The canonical metadata (`len` bytes) must fit [`MAX_METADATA_LEN`].
pub(super) fn check_metadata_len(len: usize) -> Result<(), ValidationError> {
    if len > MAX_METADATA_LEN {
        return Err(ValidationError::TooLong {
            field: "metadata",
            len,
            max: MAX_METADATA_LEN,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Actor, EventBuilder};

    fn base() -> EventBuilder {
        Event::builder("database.create").actor(Actor::customer("kunde123"))
    }

    #[test]
    fn missing_actor_is_an_error() {
        let err = Event::builder("database.create").build().unwrap_err();
        assert_eq!(err, ValidationError::MissingActor);
    }

    #[test]
    fn empty_actor_is_an_error() {
        let err = Event::builder("x.y")
            .actor(Actor::customer("  "))
            .build()
            .unwrap_err();
        assert_eq!(
            err,
            ValidationError::Empty {
                field: "actor.name"
            }
        );
    }

    #[test]
    fn newline_and_ansi_in_identifiers_are_rejected() {
        for bad in ["kunde\n123", "kunde\u{1b}[31m", "a\u{202E}b", "a\u{2028}b"] {
            let err = Event::builder("x.y")
                .actor(Actor::customer(bad))
                .build()
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    ValidationError::ControlCharacter {
                        field: "actor.name",
                        ..
                    }
                ),
                "{bad:?}"
            );
        }
        let err = base().target("database", "a\rb").build().unwrap_err();
        assert!(matches!(
            err,
            ValidationError::ControlCharacter {
                field: "target.id",
                code: 0x0D
            }
        ));
    }

    #[test]
    fn oversized_fields_are_rejected() {
        let long = "a".repeat(MAX_IDENTIFIER_LEN + 1);
        assert!(matches!(
            base().tenant(long).build(),
            Err(ValidationError::TooLong {
                field: "tenant",
                ..
            })
        ));
        let huge = "x".repeat(MAX_METADATA_LEN);
        assert!(matches!(
            base().meta("blob", huge).build(),
            Err(ValidationError::TooLong {
                field: "metadata",
                ..
            })
        ));
        assert!(matches!(
            base().user_agent("u".repeat(MAX_TEXT_LEN + 1)).build(),
            Err(ValidationError::TooLong { .. })
        ));
    }

    #[test]
    fn floats_in_metadata_are_rejected() {
        let err = base().meta("ratio", 0.5).build().unwrap_err();
        assert_eq!(
            err,
            ValidationError::Float {
                path: "metadata.ratio".into()
            }
        );
        let nested = serde_json::json!({"a": [1, {"b": 1.5}]});
        assert!(matches!(
            base().meta("n", nested).build(),
            Err(ValidationError::Float { .. })
        ));
    }

    #[test]
    fn invalid_action_names_are_rejected() {
        for bad in [
            "",
            "Database.Create",
            "database..create",
            "database create",
            "db.\n",
        ] {
            let err = Event::builder(bad)
                .actor(Actor::customer("k"))
                .build()
                .unwrap_err();
            assert!(matches!(err, ValidationError::InvalidAction(_)), "{bad:?}");
        }
    }

    #[test]
    fn invisible_format_characters_are_escaped_and_refused_in_identifiers() {
        // LRM, RLM, ALM, ZWSP, BOM, a bidi isolate, a tag character and a
        // soft hyphen: each hides text or reorders what a reader sees.
        let invisible = [
            '\u{200E}',
            '\u{200F}',
            '\u{061C}',
            '\u{200B}',
            '\u{FEFF}',
            '\u{2067}',
            '\u{E0041}',
            '\u{00AD}',
        ];
        for c in invisible {
            let text = format!("admin{c}x");
            let escaped = escape_text(&text);
            assert_eq!(escaped, format!("admin\\u{{{:04X}}}x", c as u32));
            let err = base().tenant(text).build().unwrap_err();
            assert!(
                matches!(err, ValidationError::ControlCharacter { .. }),
                "{c:?}"
            );
        }
        assert_eq!(escape_text("Grüße, 日本 👍"), "Grüße, 日本 👍");
    }
}
