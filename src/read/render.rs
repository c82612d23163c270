//! Stored entries as sentences, in English or German:
//! `kunde123 created database abc456`,
//! `kunde123 hat Datenbank abc456 angelegt`.
//!
//! A rendering is read by people and pasted into tickets and mails, so it
//! must never let a stored value pose as something else: every value is
//! escaped with [`escape_text`](crate::model::escape_text) (no line breaks, ANSI
//! escapes or direction overrides survive), and values are inserted in a
//! single pass, so a value that looks like `{actor}` stays text. Fields that
//! retention or an erasure request removed show as redacted, fields never
//! recorded as unknown.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::event::{ActionSpec, Catalog, STANDARD_PLACEHOLDERS};
use crate::model::escape_text;
use crate::model::{Entry, EntryKind, Field};

/// The language of a rendering.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Language {
    /// English.
    #[default]
    English,
    /// German.
    German,
}

impl Language {
    /// The language of a tag such as `de`, `de-AT` or `en_GB` (as in an
    /// `Accept-Language` header), if it is one we render.
    pub fn from_tag(tag: &str) -> Option<Self> {
        let primary = tag.trim().split(['-', '_']).next()?;
        if primary.eq_ignore_ascii_case("en") {
            Some(Language::English)
        } else if primary.eq_ignore_ascii_case("de") {
            Some(Language::German)
        } else {
            None
        }
    }

    fn words(self) -> &'static Words {
        match self {
            Language::English => &ENGLISH,
            Language::German => &GERMAN,
        }
    }
}

/// The fixed words of a language around the action's own template.
struct Words {
    redacted: &'static str,
    unknown: &'static str,
    failed: &'static str,
    on_behalf: &'static str,
    generic: &'static str,
    generic_on: &'static str,
    genesis: &'static str,
    epoch_seal: &'static str,
    record: &'static str,
}

const ENGLISH: Words = Words {
    redacted: "[redacted]",
    unknown: "[unknown]",
    failed: " (failed: {reason})",
    on_behalf: " (by {impersonator} on their behalf)",
    generic: "{actor} performed {action}",
    generic_on: "{actor} performed {action} on {target_type} {target}",
    genesis: "trail {trail} started",
    epoch_seal: "epoch {epoch} sealed",
    record: "{kind} record",
};

const GERMAN: Words = Words {
    redacted: "[geschwärzt]",
    unknown: "[unbekannt]",
    failed: " (fehlgeschlagen: {reason})",
    on_behalf: " (durch {impersonator} in Vertretung)",
    generic: "{actor} hat {action} ausgeführt",
    generic_on: "{actor} hat {action} an {target_type} {target} ausgeführt",
    genesis: "Protokoll {trail} begonnen",
    epoch_seal: "Epoche {epoch} versiegelt",
    record: "Eintrag {kind}",
};

/// Renders an entry as a sentence, with the messages of the shipped
/// [`HostingAction`](crate::HostingAction)s. For a panel's own actions use
/// [`Catalog::render`].
///
/// Every value is escaped with [`escape_text`](crate::model::escape_text) and
/// inserted in a single pass, so no stored value can break a line, send
/// terminal escapes, reorder the text or pose as a placeholder. Fields that
/// were redacted show as `[redacted]` / `[geschwärzt]`, fields never
/// recorded as `[unknown]` / `[unbekannt]`. A failure adds its reason, an
/// impersonation the impersonator, unless the template shows them; actions
/// the catalog does not know get a generic sentence.
///
/// ```
/// # use trailseal::{Body, Entry, EntryKind, read::{Language, render}, model::{Digest, Mac, Salt}};
/// # let mut body = Body::new();
/// # body.insert_public("action", "database.create");
/// # body.insert_personal("actor.name", "kunde123", Salt::from_bytes([1; 16]));
/// # body.insert_public("target.type", "database");
/// # body.insert_personal("target.id", "abc456", Salt::from_bytes([2; 16]));
/// # body.insert_public("outcome", "success");
/// # let entry = Entry { trail: "admin".into(), seq: 1, epoch: 0, key_id: "k1".into(),
/// #     recorded_at: chrono::Utc::now(), kind: EntryKind::Event, body,
/// #     prev_mac: Mac::from_bytes([0; 32]), body_commitment: Digest::from_bytes([0; 32]),
/// #     mac: Mac::from_bytes([0; 32]) };
/// assert_eq!(render(&entry, Language::English), "kunde123 created database abc456");
/// assert_eq!(render(&entry, Language::German), "kunde123 hat Datenbank abc456 angelegt");
/// ```
pub fn render(entry: &Entry, language: Language) -> String {
    let spec = entry
        .value("action")
        .and_then(crate::HostingAction::from_name)
        .map(crate::HostingAction::spec);
    Sentence::new(entry, language).any(spec)
}

impl Catalog {
    /// Renders an entry as a sentence, with the messages of this catalog's
    /// actions; actions it does not know get a generic sentence.
    pub fn render(&self, entry: &Entry, language: Language) -> String {
        let spec = entry.value("action").and_then(|name| self.get(name));
        Sentence::new(entry, language).any(spec)
    }
}

/// One rendering in progress.
struct Sentence<'a> {
    entry: &'a Entry,
    words: &'static Words,
    language: Language,
    /// The entry's metadata, parsed on first use.
    metadata: Option<Option<Map<String, Value>>>,
}

impl<'a> Sentence<'a> {
    fn new(entry: &'a Entry, language: Language) -> Self {
        Self {
            entry,
            words: language.words(),
            language,
            metadata: None,
        }
    }

    fn any(self, spec: Option<&'static ActionSpec>) -> String {
        if self.entry.kind == EntryKind::Event {
            self.event(spec)
        } else {
            self.record()
        }
    }

    fn event(mut self, spec: Option<&'static ActionSpec>) -> String {
        let template = match spec {
            Some(spec) => match self.language {
                Language::English => spec.english(),
                Language::German => spec.german(),
            },
            None if self.entry.body.get("target.id").is_some() => self.words.generic_on,
            None => self.words.generic,
        };
        let mut out = String::with_capacity(template.len() + 32);
        self.fill(template, &mut out);
        let body = &self.entry.body;
        if body.value("outcome") == Some("failure") && !template.contains("{reason}") {
            self.fill(self.words.failed, &mut out);
        }
        if body.get("impersonator.name").is_some() && !template.contains("{impersonator}") {
            self.fill(self.words.on_behalf, &mut out);
        }
        out
    }

    /// Entries the trail writes itself: genesis, epoch seals, retention …
    fn record(mut self) -> String {
        let template = match self.entry.kind {
            EntryKind::Genesis => self.words.genesis,
            EntryKind::EpochSeal => self.words.epoch_seal,
            _ => self.words.record,
        };
        let mut out = String::new();
        self.fill(template, &mut out);
        out
    }

    /// Copies `template` to `out`, replacing each `{name}` by the escaped
    /// value. Single pass: inserted values are never scanned again.
    fn fill(&mut self, template: &str, out: &mut String) {
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                out.push_str(&rest[open..]);
                return;
            };
            let value = self.value(&after[..close]);
            out.push_str(&value);
            rest = &after[close + 1..];
        }
        out.push_str(rest);
    }

    fn value(&mut self, placeholder: &str) -> Cow<'static, str> {
        let entry = self.entry;
        match placeholder {
            "trail" => return escaped(&entry.trail),
            "epoch" => return Cow::Owned(entry.epoch.to_string()),
            "kind" => return Cow::Borrowed(entry.kind.as_str()),
            "action" => return self.field("action"),
            "target_type" => return self.field("target.type"),
            _ => {}
        }
        match STANDARD_PLACEHOLDERS
            .iter()
            .find(|(name, _)| *name == placeholder)
        {
            Some((_, field)) => self.field(field),
            None => self.metadata_value(placeholder),
        }
    }

    fn field(&self, name: &str) -> Cow<'static, str> {
        match self.entry.body.get(name) {
            Some(Field::Redacted { .. }) => Cow::Borrowed(self.words.redacted),
            Some(field) => field
                .value()
                .map_or(Cow::Borrowed(self.words.unknown), escaped),
            None => Cow::Borrowed(self.words.unknown),
        }
    }

    fn metadata_value(&mut self, key: &str) -> Cow<'static, str> {
        match self.entry.body.get("metadata") {
            Some(Field::Redacted { .. }) => return Cow::Borrowed(self.words.redacted),
            None => return Cow::Borrowed(self.words.unknown),
            Some(_) => {}
        }
        let entry = self.entry;
        let metadata = self.metadata.get_or_insert_with(|| {
            entry
                .value("metadata")
                .and_then(|text| serde_json::from_str(text).ok())
        });
        match metadata.as_ref().and_then(|map| map.get(key)) {
            Some(Value::String(text)) => escaped(text),
            Some(other) => escaped(&crate::event::canonical_json(other)),
            None => Cow::Borrowed(self.words.unknown),
        }
    }
}

fn escaped(text: &str) -> Cow<'static, str> {
    Cow::Owned(escape_text(text).into_owned())
}

/// Renders several entries, one per line, each prefixed with its trail and
/// seq (`admin#7 kunde123 created database abc456`). Because every value is
/// escaped, the number of lines is always the number of entries.
pub fn render_lines<'e>(
    catalog: &Catalog,
    entries: impl IntoIterator<Item = &'e Entry>,
    language: Language,
) -> String {
    let mut out = String::new();
    for entry in entries {
        let _ = writeln!(
            out,
            "{}#{} {}",
            escape_text(&entry.trail),
            entry.seq,
            catalog.render(entry, language)
        );
    }
    out
}
