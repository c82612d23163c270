//! What a trail stores: sealed entries and their bodies.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Digest, FormatError, Mac, MacInput, Salt, field_commitment};

/// What an entry is: an application event or one of the trail's own records.
///
/// The numeric code is part of the sealed format (see `docs/FORMAT.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EntryKind {
    /// The first entry of a trail (seq 0): names the trail and its key.
    Genesis,
    /// An application event, e.g. `database.create`.
    Event,
    /// The seal that closes an epoch, made with that epoch's key.
    EpochSeal,
    /// A new verification key takes over from here on.
    KeyRotation,
    /// A retention run deleted the ranges it lists.
    Retention,
    /// Personal field values were erased from the entries it lists.
    Redaction,
    /// A legal hold was placed.
    HoldPlaced,
    /// A legal hold was released.
    HoldReleased,
    /// The processing of the entries it lists was restricted (GDPR
    /// Art. 18), or the restriction lifted.
    Restriction,
}

impl EntryKind {
    /// Every kind, in code order.
    pub const ALL: [EntryKind; 9] = [
        EntryKind::Genesis,
        EntryKind::Event,
        EntryKind::EpochSeal,
        EntryKind::KeyRotation,
        EntryKind::Retention,
        EntryKind::Redaction,
        EntryKind::HoldPlaced,
        EntryKind::HoldReleased,
        EntryKind::Restriction,
    ];

    /// The byte that stands for this kind in the MAC input.
    pub const fn code(self) -> u8 {
        match self {
            EntryKind::Genesis => 0,
            EntryKind::Event => 1,
            EntryKind::EpochSeal => 2,
            EntryKind::KeyRotation => 3,
            EntryKind::Retention => 4,
            EntryKind::Redaction => 5,
            EntryKind::HoldPlaced => 6,
            EntryKind::HoldReleased => 7,
            EntryKind::Restriction => 8,
        }
    }

    /// The kind a code stands for.
    pub fn from_code(code: u8) -> Result<Self, FormatError> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.code() == code)
            .ok_or(FormatError::UnknownKind(code))
    }

    /// The stable name used in storage, exports and reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            EntryKind::Genesis => "genesis",
            EntryKind::Event => "event",
            EntryKind::EpochSeal => "epoch_seal",
            EntryKind::KeyRotation => "key_rotation",
            EntryKind::Retention => "retention",
            EntryKind::Redaction => "redaction",
            EntryKind::HoldPlaced => "hold_placed",
            EntryKind::HoldReleased => "hold_released",
            EntryKind::Restriction => "restriction",
        }
    }

    /// The kind a stored name stands for.
    pub fn from_name(name: &str) -> Result<Self, FormatError> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| FormatError::UnknownKindName(name.to_owned()))
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One field of an entry body.
///
/// Public fields are committed in clear. Personal fields are committed as
/// `SHA-256(domain ‖ salt ‖ name ‖ value)`, so erasing the value and the salt
/// later ([`Field::Redacted`]) leaves the body commitment, and with it the
/// chain, intact.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[allow(
    clippy::exhaustive_enums,
    reason = "the format defines its fields; a new field is a new format version"
)]
pub enum Field {
    /// A value that is never erased (action, kinds, outcome, seal data …).
    Public(String),
    /// A personal value with its salt, still present.
    Personal {
        /// The value.
        value: String,
        /// The random salt of its commitment.
        salt: Salt,
    },
    /// A personal value that has been erased; only its commitment is left.
    Redacted {
        /// `SHA-256` commitment to the erased salt, name and value.
        commitment: Digest,
    },
}

impl Field {
    /// The value, unless it was erased.
    pub fn value(&self) -> Option<&str> {
        match self {
            Field::Public(value) | Field::Personal { value, .. } => Some(value),
            Field::Redacted { .. } => None,
        }
    }

    /// Whether the field holds personal data (present or erased).
    pub fn is_personal(&self) -> bool {
        !matches!(self, Field::Public(_))
    }

    /// The redacted form of this field: the commitment without value or salt.
    /// Public fields are returned unchanged.
    pub fn redacted(&self, name: &str) -> Field {
        match self {
            Field::Personal { value, salt } => Field::Redacted {
                commitment: field_commitment(salt, name, value),
            },
            other => other.clone(),
        }
    }
}

// Personal values stay out of debug output: a `{:?}` of an entry in a log
// line must not leak what retention later erases.
impl fmt::Debug for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Public(value) => f.debug_tuple("Public").field(value).finish(),
            Field::Personal { .. } => f.write_str("Personal(..)"),
            Field::Redacted { commitment } => f
                .debug_struct("Redacted")
                .field("commitment", commitment)
                .finish(),
        }
    }
}

/// The body of an entry: named fields, kept in name order because the
/// commitment encodes them in that order.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Body {
    // A vector sorted by name, names unique: bodies hold a dozen or two
    // fields, which a binary search finds about as fast as a tree does,
    // while building, cloning and dropping a body costs one allocation
    // instead of one per tree node. Names are almost always static
    // (`actor.name`); `Cow` spares an allocation per field on the sealing
    // path.
    fields: Vec<(Cow<'static, str>, Field)>,
}

impl Body {
    /// An empty body.
    pub fn new() -> Self {
        Self::default()
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.fields
            .binary_search_by(|(known, _)| known.as_ref().cmp(name))
    }

    /// Sets a public field.
    pub fn insert_public(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) {
        self.insert(name, Field::Public(value.into()));
    }

    /// Sets a personal field with its salt.
    pub fn insert_personal(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<String>,
        salt: Salt,
    ) {
        self.insert(
            name,
            Field::Personal {
                value: value.into(),
                salt,
            },
        );
    }

    /// Sets a field as it is.
    pub fn insert(&mut self, name: impl Into<Cow<'static, str>>, field: Field) {
        let name = name.into();
        match self.position(&name) {
            Ok(at) => self.fields[at].1 = field,
            Err(at) => self.fields.insert(at, (name, field)),
        }
    }

    /// The field of that name.
    pub fn get(&self, name: &str) -> Option<&Field> {
        let at = self.position(name).ok()?;
        Some(&self.fields[at].1)
    }

    /// Mutable access to the field of that name (used by redaction).
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Field> {
        let at = self.position(name).ok()?;
        Some(&mut self.fields[at].1)
    }

    /// Erases the named personal fields that still hold a value (see
    /// [`Field::redacted`]); public, absent and already erased fields are
    /// left alone. Returns whether anything changed.
    pub fn erase(&mut self, names: &[impl AsRef<str>]) -> bool {
        let mut changed = false;
        for name in names {
            let name = name.as_ref();
            if let Some(field) = self.get_mut(name)
                && matches!(field, Field::Personal { .. })
            {
                *field = field.redacted(name);
                changed = true;
            }
        }
        changed
    }

    /// Names of the fields that were erased.
    pub fn redacted_names(&self) -> impl Iterator<Item = &str> {
        self.fields
            .iter()
            .filter(|(_, field)| matches!(field, Field::Redacted { .. }))
            .map(|(name, _)| name.as_ref())
    }

    /// The value of the field of that name, unless absent or erased.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Field::value)
    }

    /// All fields in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Field)> {
        self.fields
            .iter()
            .map(|(name, field)| (name.as_ref(), field))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether the body has no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

// Serialized as a map from name to field, as stored and exported.
impl Serialize for Body {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// The names of the fields events carry. Decoding borrows these instead of
/// allocating a name per field: a stored trail repeats them in every entry.
pub(crate) const EVENT_FIELD_NAMES: [&str; 22] = [
    "action",
    "actor.kind",
    "actor.name",
    "changes",
    "context.htaccess_user",
    "context.ip",
    "context.network",
    "context.request_id",
    "context.source",
    "context.user_agent",
    "impersonator.kind",
    "impersonator.name",
    "location.file",
    "location.line",
    "location.module",
    "metadata",
    "occurred_at",
    "outcome",
    "outcome.reason",
    "target.id",
    "target.type",
    "tenant",
];

fn field_name(name: &str) -> Cow<'static, str> {
    // A scan beats a binary search here: most lengths are unique, so almost
    // every comparison ends at the length without reading a byte.
    match EVENT_FIELD_NAMES.iter().find(|known| **known == name) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(name.to_owned()),
    }
}

/// A body field name as decoded: a known name borrowed, any other owned.
struct FieldName(Cow<'static, str>);

impl<'de> Deserialize<'de> for FieldName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;

        impl serde::de::Visitor<'_> for NameVisitor {
            type Value = FieldName;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<FieldName, E> {
                Ok(FieldName(field_name(name)))
            }
        }

        deserializer.deserialize_str(NameVisitor)
    }
}

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BodyVisitor;

        impl<'de> serde::de::Visitor<'de> for BodyVisitor {
            type Value = Body;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of body fields")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Body, A::Error> {
                // One stored form per body: fields in name order, each name
                // once, exactly as a body is written. A repeated name would
                // let two readers see two different values.
                let mut fields: Vec<(Cow<'static, str>, Field)> =
                    Vec::with_capacity(map.size_hint().unwrap_or(16).min(64));
                while let Some((FieldName(name), field)) = map.next_entry::<FieldName, Field>()? {
                    if let Some((previous, _)) = fields.last()
                        && previous.as_ref() >= name.as_ref()
                    {
                        let problem = if previous.as_ref() == name.as_ref() {
                            "is repeated"
                        } else {
                            "is out of name order"
                        };
                        return Err(serde::de::Error::custom(format_args!(
                            "the body field {:?} {problem}",
                            crate::model::escape_text(&name)
                        )));
                    }
                    fields.push((name, field));
                }
                Ok(Body { fields })
            }
        }

        deserializer.deserialize_map(BodyVisitor)
    }
}

/// Decodes an entry's time in its one stored form,
/// `YYYY-MM-DDTHH:MM:SS[.fff[fff]]Z`: UTC, whole microseconds, with the
/// fewest of 0, 3 or 6 fractional digits that state it exactly (what
/// exports have always written). Any other form of the same instant, and
/// any digit below a microsecond, is refused: the MAC covers microseconds,
/// so a second form would be an unsealed difference.
fn deserialize_time<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<DateTime<Utc>, D::Error> {
    struct TimeVisitor;

    impl serde::de::Visitor<'_> for TimeVisitor {
        type Value = DateTime<Utc>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a UTC time with 0, 3 or 6 fractional digits")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<DateTime<Utc>, E> {
            parse_stored_time(text).ok_or_else(|| {
                E::custom("not a time in its stored form (UTC, Z, 0, 3 or 6 fractional digits, the fewest that state it)")
            })
        }
    }

    deserializer.deserialize_str(TimeVisitor)
}

/// A time in its one stored form (see [`deserialize_time`]), or `None`.
pub(crate) fn parse_stored_time(text: &str) -> Option<DateTime<Utc>> {
    let bytes = text.as_bytes();
    let (head, rest) = bytes.split_at_checked(19)?;
    let digits = |range: std::ops::Range<usize>| decimal(&head[range]);
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(at, byte)| head[at] != byte) {
        return None;
    }
    let (fraction, zone) = rest.split_at_checked(rest.len().checked_sub(1)?)?;
    if zone != b"Z" {
        return None;
    }
    let micros = match fraction {
        [] => 0,
        [b'.', digits @ ..] if digits.len() == 3 => {
            Some(decimal(digits)? * 1000).filter(|&micros| micros != 0)?
        }
        [b'.', digits @ ..] if digits.len() == 6 => {
            Some(decimal(digits)?).filter(|&micros| micros % 1000 != 0)?
        }
        _ => return None,
    };
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(digits(0..4)?).ok()?,
        digits(5..7)?,
        digits(8..10)?,
    )?;
    let time = date.and_hms_micro_opt(digits(11..13)?, digits(14..16)?, digits(17..19)?, micros)?;
    Some(time.and_utc())
}

/// The value of at most nine decimal digits.
fn decimal(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |number, &byte| {
        byte.is_ascii_digit()
            .then(|| number * 10 + u32::from(byte - b'0'))
    })
}

/// One sealed entry of a trail, exactly as stored.
///
/// `mac = HMAC-SHA256(K_epoch, version ‖ trail ‖ seq ‖ epoch ‖ key_id ‖
/// recorded_at ‖ kind ‖ prev_mac ‖ body_commitment)`; see `docs/FORMAT.md`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(
    clippy::exhaustive_structs,
    reason = "stores and verifiers written elsewhere build entries; the format defines its fields; a new field is a new format version"
)]
pub struct Entry {
    /// The trail (hash chain) this entry belongs to.
    pub trail: String,
    /// Position in the trail, gapless from 0.
    pub seq: u64,
    /// The key epoch whose key sealed this entry.
    pub epoch: u64,
    /// The verification key this entry was sealed under.
    pub key_id: String,
    /// When the entry was sealed, UTC, microsecond precision.
    #[serde(deserialize_with = "deserialize_time")]
    pub recorded_at: DateTime<Utc>,
    /// What the entry is.
    pub kind: EntryKind,
    /// The body: event fields, or the record's own fields.
    pub body: Body,
    /// The MAC of the previous entry, or the trail's genesis value for seq 0.
    pub prev_mac: Mac,
    /// SHA-256 over the canonical encoding of the body.
    pub body_commitment: Digest,
    /// This entry's MAC.
    pub mac: Mac,
}

impl Entry {
    /// The value of a body field, unless absent or erased.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.body.value(name)
    }

    /// What this entry's MAC covers, as stored, in format `version` (its
    /// trail's key line decides; see [`crate::seal::KeyLine::format`]). A
    /// verifier recomputing the MAC for another seq or trail changes those
    /// two fields.
    pub fn mac_input(&self, version: u8) -> MacInput<'_> {
        MacInput {
            version,
            trail: &self.trail,
            seq: self.seq,
            epoch: self.epoch,
            key_id: &self.key_id,
            recorded_at_micros: self.recorded_at.timestamp_micros(),
            kind: self.kind,
            prev_mac: &self.prev_mac,
            body_commitment: &self.body_commitment,
        }
    }

    /// The entry's header, as a store reports a trail's head.
    pub fn head(&self) -> Head {
        Head {
            seq: self.seq,
            epoch: self.epoch,
            kind: self.kind,
            recorded_at: self.recorded_at,
            mac: self.mac,
        }
    }
}

/// The last entry of a trail, as far as a writer needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::exhaustive_structs, reason = "store implementations build it")]
pub struct Head {
    /// Its seq; the next entry gets `seq + 1`.
    pub seq: u64,
    /// Its epoch.
    pub epoch: u64,
    /// Its kind.
    pub kind: EntryKind,
    /// Its timestamp; later entries never get an earlier one.
    pub recorded_at: DateTime<Utc>,
    /// Its MAC, the next entry's `prev_mac`.
    pub mac: Mac,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_has_one_stored_form_each_name_once_in_order() {
        for (json, problem) in [
            (
                r#"{"action":{"public":"x.y"},"outcome":{"public":"a"},"outcome":{"public":"b"}}"#,
                "repeated",
            ),
            (
                r#"{"outcome":{"public":"a"},"action":{"public":"x.y"}}"#,
                "out of name order",
            ),
            (
                r#"{"tenant":{"personal":{"value":"k","salt":"00000000000000000000000000000000","x":1}}}"#,
                "unknown field",
            ),
        ] {
            let err = serde_json::from_str::<Body>(json).unwrap_err().to_string();
            assert!(err.contains(problem), "{json}: {err}");
        }
    }

    #[test]
    fn times_decode_only_in_their_stored_form() {
        let stored = [
            ("2026-01-01T00:20:00Z", 0),
            ("2026-01-01T00:20:00.100Z", 100_000),
            ("2026-01-01T00:20:00.123456Z", 123_456),
            ("2026-01-01T00:20:00.000001Z", 1),
            ("2024-02-29T23:59:59.999999Z", 999_999),
        ];
        for (text, micros) in stored {
            let time = deserialize_time(serde_json::Value::from(text)).expect(text);
            assert_eq!(time.timestamp_subsec_micros(), micros, "{text}");
            // What an export writes is exactly what was read.
            assert_eq!(serde_json::to_value(time).unwrap(), text);
        }
        let refused = [
            "2026-01-01T00:20:00.1Z",
            "2026-01-01T00:20:00.000Z",
            "2026-01-01T00:20:00.100000Z",
            "2026-01-01T00:20:00.123456000Z",
            "2026-01-01T00:20:00.123456001Z",
            "2026-01-01T01:20:00.5+01:00",
            "2026-01-01t00:20:00z",
            "2016-12-31T23:59:60Z",
            "2025-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:20:00.Z",
            "2026-01-01T00:20:00",
            "2026-1-01T00:20:00Z",
            "+2026-01-01T00:20:00Z",
            "2026-01-01T00:20:00.12a456Z",
            "",
        ];
        for text in refused {
            assert!(
                deserialize_time(serde_json::Value::from(text)).is_err(),
                "{text}"
            );
        }
    }

    #[test]
    fn an_entry_line_with_an_unknown_field_is_refused() {
        let line = r#"{"trail":"admin","seq":0,"epoch":0,"key_id":"k1","recorded_at":"2026-01-01T00:00:00Z","kind":"event","body":{},"prev_mac":"0000000000000000000000000000000000000000000000000000000000000000","body_commitment":"0000000000000000000000000000000000000000000000000000000000000000","mac":"0000000000000000000000000000000000000000000000000000000000000000"}"#;
        assert!(serde_json::from_str::<Entry>(line).is_ok());
        let extra = line.replace(r#""seq":0"#, r#""seq":0,"note":"x""#);
        assert!(serde_json::from_str::<Entry>(&extra).is_err());
        let upper = line.replace("\"mac\":\"00", "\"mac\":\"AA");
        assert!(serde_json::from_str::<Entry>(&upper).is_err());
    }

    #[test]
    fn fields_inserted_in_any_order_are_kept_in_name_order() {
        let mut body = Body::new();
        body.insert_public("outcome", "success");
        body.insert_public("action", "x.y");
        body.insert_public("context.source", "ui");
        body.insert_public("outcome", "failure");
        let names: Vec<_> = body.iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["action", "context.source", "outcome"]);
        assert_eq!(body.value("outcome"), Some("failure"));
        assert_eq!(body.get("absent"), None);
        let json = serde_json::to_string(&body).expect("serializable");
        assert_eq!(
            json,
            r#"{"action":{"public":"x.y"},"context.source":{"public":"ui"},"outcome":{"public":"failure"}}"#
        );
        assert_eq!(serde_json::from_str::<Body>(&json).expect("a body"), body);
    }

    #[test]
    fn a_decoded_body_borrows_known_names_and_keeps_unknown_ones() {
        let body: Body =
            serde_json::from_str(r#"{"action":{"public":"x.y"},"custom.name":{"public":"v"}}"#)
                .expect("a body");
        let names: Vec<_> = body.fields.iter().map(|(name, _)| name).collect();
        assert!(matches!(names[0], Cow::Borrowed("action")));
        assert!(matches!(names[1], Cow::Owned(name) if name == "custom.name"));
        assert_eq!(body.value("custom.name"), Some("v"));
    }
}
