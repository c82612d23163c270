//! Secrets never land in a trail.
//!
//! A trail is kept for months and read by people who must not learn a
//! customer's password from it. Whoever records an event may pass more than
//! they should — a whole form, a request's fields — so the names of metadata
//! fields and changed fields are checked before anything is sealed: a field
//! whose name marks a secret is refused ([`SecretPolicy::Refuse`], the
//! default) or its value is replaced by [`SECRET_MARKER`]
//! ([`SecretPolicy::Mask`]), whichever the call site chose.
//!
//! A name marks a secret when, ignoring case and the separators `_ - . `
//! and space, it contains one of [`SECRET_NAMES`] or a name added with
//! [`register_secret_names`]: `password`, `new_password`, `dbPassword` and
//! `X-Api-Key` all do. Values are not inspected: a secret hidden in a field
//! called `note`, or inside a `?debug` rendering of a whole struct, is not
//! found, so record fields, not forms.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, RwLock};

use serde_json::{Map, Value};

use crate::event::{Change, Event, ValidationError};

/// The names that mark a secret. Extend them with [`register_secret_names`].
///
/// A metadata or changed field's name marks a secret when, ignoring case and
/// the separators `_ - . ` and space, it contains one of these: `password`,
/// `new_password`, `dbPassword` and `X-Api-Key` all do. Such a field is
/// refused ([`SecretPolicy::Refuse`], the default) or its value replaced by
/// [`SECRET_MARKER`] ([`SecretPolicy::Mask`]), whichever the call site chose.
/// Values are not inspected: a secret inside a field called `note`, or in a
/// `?debug` rendering of a whole form, is not found.
pub const SECRET_NAMES: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "api_key",
    "private_key",
    "credential",
    "authorization",
    "cookie",
    "session_id",
    "otp_code",
    "totp",
    "cvv",
    "cvc",
];

/// What a secret's value is replaced by under [`SecretPolicy::Mask`].
pub const SECRET_MARKER: &str = "[secret]";

/// What to do with a field whose name marks a secret.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SecretPolicy {
    /// Refuse the event with [`ValidationError::Secret`]; nothing is recorded.
    #[default]
    Refuse,
    /// Record the field with its value replaced by [`SECRET_MARKER`], so the
    /// trail shows that a secret was given or changed, never which.
    Mask,
}

/// Names added at run time, already normalized. Start-up code adds to it;
/// every recording reads it.
static REGISTERED: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// [`SECRET_NAMES`], normalized once rather than for every field checked.
static NORMALIZED_SECRET_NAMES: LazyLock<Vec<String>> = LazyLock::new(|| {
    SECRET_NAMES
        .iter()
        .map(|secret| normalize(secret))
        .collect()
});

/// Adds names that mark a secret in this process, e.g. a panel's own
/// `"pin"` or `"tan"`. Call it at start-up, before recording. Names without
/// any letter or digit are ignored: they would mark every field.
pub fn register_secret_names<I, S>(names: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut registered = REGISTERED
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for name in names {
        let name = normalize(name.as_ref());
        if !name.is_empty() && !registered.contains(&name) {
            registered.push(name);
        }
    }
    // Verdicts remembered under the old list are void from now on.
    REGISTERED_GENERATION.fetch_add(1, Ordering::Release);
}

/// Counts the changes of [`REGISTERED`], so that remembered verdicts are
/// never older than the list they were judged by.
static REGISTERED_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Most names whose verdict a thread remembers; beyond it the memory
/// starts over, so odd names sent by clients cannot make it grow.
const REMEMBERED_NAMES: usize = 256;

thread_local! {
    /// Verdicts on field names already judged, by generation: the same few
    /// names (`status`, `bytes`, …) come with every event, and judging one
    /// takes a normalized copy and a substring search per secret name.
    /// At most [`REMEMBERED_NAMES`] names, so a fast hash cannot be made
    /// to cost much even by names chosen to collide.
    static VERDICTS: RefCell<(u64, HashMap<String, bool, foldhash::fast::RandomState>)> =
        RefCell::new((0, HashMap::default()));
}

/// Whether a field name marks a secret.
pub fn is_secret_name(name: &str) -> bool {
    let generation = REGISTERED_GENERATION.load(Ordering::Acquire);
    let remembered = VERDICTS.with(|verdicts| {
        let verdicts = verdicts.borrow();
        (verdicts.0 == generation)
            .then(|| verdicts.1.get(name).copied())
            .flatten()
    });
    if let Some(verdict) = remembered {
        return verdict;
    }
    let verdict = judge_name(name);
    VERDICTS.with(|verdicts| {
        let mut verdicts = verdicts.borrow_mut();
        if verdicts.0 != generation || verdicts.1.len() >= REMEMBERED_NAMES {
            verdicts.1.clear();
            verdicts.0 = generation;
        }
        verdicts.1.insert(name.to_owned(), verdict);
    });
    verdict
}

fn judge_name(name: &str) -> bool {
    let name = normalize(name);
    if NORMALIZED_SECRET_NAMES
        .iter()
        .any(|secret| name.contains(secret.as_str()))
    {
        return true;
    }
    // A poisoned lock still holds a consistent list: it is only pushed to.
    REGISTERED
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .iter()
        .any(|secret| name.contains(secret.as_str()))
}

/// Lower case without separators, so `API-Key`, `api_key` and `apiKey`
/// are one name.
fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

impl Event {
    /// Replaces the value of every metadata field (at any depth) and changed
    /// field whose name marks a secret by [`SECRET_MARKER`].
    pub fn mask_secrets(&mut self) {
        mask_object(&mut self.metadata);
        for change in &mut self.changes {
            if is_secret_name(&change.field) {
                for value in [&mut change.old, &mut change.new].into_iter().flatten() {
                    *value = SECRET_MARKER.to_owned();
                }
            }
        }
    }
}

fn mask_object(map: &mut Map<String, Value>) {
    for (key, value) in map.iter_mut() {
        if is_secret_name(key) {
            *value = Value::String(SECRET_MARKER.to_owned());
        } else {
            mask_value(value);
        }
    }
}

fn mask_value(value: &mut Value) {
    match value {
        Value::Object(map) => mask_object(map),
        Value::Array(items) => items.iter_mut().for_each(mask_value),
        _ => {}
    }
}

/// Refuses any secret-named field that still holds a value other than the
/// marker. Runs in `Event::validate`, so no path to the trail skips it.
pub(crate) fn refuse_secrets(
    metadata: &Map<String, Value>,
    changes: &[Change],
) -> Result<(), ValidationError> {
    check_object("metadata", metadata)?;
    for change in changes {
        let masked = [&change.old, &change.new]
            .into_iter()
            .flatten()
            .all(|value| value == SECRET_MARKER);
        if !masked && is_secret_name(&change.field) {
            return Err(ValidationError::Secret {
                field: "changes",
                name: crate::model::escape_text(&change.field).into_owned(),
            });
        }
    }
    Ok(())
}

fn check_object(field: &'static str, map: &Map<String, Value>) -> Result<(), ValidationError> {
    for (key, value) in map {
        let masked = matches!(value, Value::String(text) if text == SECRET_MARKER);
        if !masked && is_secret_name(key) {
            return Err(ValidationError::Secret {
                field,
                name: crate::model::escape_text(key).into_owned(),
            });
        }
        check_value(field, value)?;
    }
    Ok(())
}

fn check_value(field: &'static str, value: &Value) -> Result<(), ValidationError> {
    match value {
        Value::Object(map) => check_object(field, map),
        Value::Array(items) => items.iter().try_for_each(|item| check_value(field, item)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Actor;

    #[test]
    fn names_marking_secrets_are_recognized_in_any_spelling() {
        for name in [
            "password",
            "Password",
            "new_password",
            "dbPassword",
            "X-Api-Key",
            "apikey",
            "ssh.private_key",
            "csrf_token",
            "client secret",
            "pwd",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in ["size_mb", "domain", "user", "plan", "peer", "key_id"] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn registered_names_extend_the_list() {
        assert!(!is_secret_name("tan_number_for_test"));
        register_secret_names(["TAN-Number-For-Test", "__"]);
        assert!(is_secret_name("tan_number_for_test"));
        assert!(is_secret_name("the_tannumberfortest_field"));
        // The separator-only name was ignored rather than marking everything.
        assert!(!is_secret_name("size_mb"));
    }

    #[test]
    fn remembered_verdicts_stay_right_past_the_memory_bound() {
        assert!(is_secret_name("db_password"));
        for i in 0..3 * REMEMBERED_NAMES {
            assert!(!is_secret_name(&format!("field_{i}")));
        }
        assert!(is_secret_name("db_password"));
        assert!(!is_secret_name("field_0"));
        VERDICTS.with(|verdicts| assert!(verdicts.borrow().1.len() <= REMEMBERED_NAMES));
    }

    fn base() -> crate::EventBuilder {
        Event::builder("admin.password_change").actor(Actor::admin("root"))
    }

    #[test]
    fn secret_metadata_is_refused_by_default() {
        let err = base().meta("password", "hunter2").build().unwrap_err();
        assert_eq!(
            err,
            ValidationError::Secret {
                field: "metadata",
                name: "password".into()
            }
        );
        let nested = serde_json::json!({"db": {"user": "u", "Passwd": "x"}});
        let err = base().meta("connection", nested).build().unwrap_err();
        assert!(matches!(err, ValidationError::Secret { ref name, .. } if name == "Passwd"));
        let err = base()
            .change("password", None, Some("hunter2".into()))
            .build()
            .unwrap_err();
        assert!(matches!(
            err,
            ValidationError::Secret {
                field: "changes",
                ..
            }
        ));
    }

    #[test]
    fn masking_replaces_values_and_keeps_the_names() {
        let event = base()
            .meta("password", "hunter2")
            .meta("list", serde_json::json!([{"token": 42, "n": 1}]))
            .meta("size_mb", 100)
            .change("password", Some("old".into()), Some("new".into()))
            .secrets(SecretPolicy::Mask)
            .build()
            .expect("masked secrets are accepted");
        assert_eq!(event.metadata["password"], SECRET_MARKER);
        assert_eq!(
            event.metadata["list"],
            serde_json::json!([{"token": SECRET_MARKER, "n": 1}])
        );
        assert_eq!(event.metadata["size_mb"], 100);
        assert_eq!(event.changes[0].old.as_deref(), Some(SECRET_MARKER));
        assert_eq!(event.changes[0].new.as_deref(), Some(SECRET_MARKER));
        let text = format!("{event:?}");
        assert!(!text.contains("hunter2") && !text.contains("42"), "{text}");
    }

    #[test]
    fn a_masked_event_whose_secret_is_put_back_is_refused() {
        let mut event = base()
            .meta("token", "t")
            .secrets(SecretPolicy::Mask)
            .build()
            .unwrap();
        event
            .metadata
            .insert("token".into(), Value::String("abc".into()));
        assert!(matches!(
            event.validate(),
            Err(ValidationError::Secret { .. })
        ));
    }
}
