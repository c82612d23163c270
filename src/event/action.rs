//! Typed actions: the [`actions!`](crate::actions!) macro, the [`Action`]
//! trait every declared action implements, and the [`Catalog`] that finds an
//! action's description again from the name stored in an entry.
//!
//! An action is a value of an enum declared with `actions!`. Each variant
//! carries, fixed at compile time, a stable dotted name (`database.create`),
//! the trail it belongs to, the type of resource it acts on, the metadata
//! fields it expects, and a message template in English and German.
//! Because actions are enum variants, a misspelt action is a compile error,
//! not a silently new name in the trail.

use std::collections::HashMap;
use std::fmt;

/// The placeholders every message template may use, and the entry field each
/// one is read from.
///
/// Any other placeholder must name one of the action's declared metadata
/// `fields`, so that a misspelt placeholder fails to compile.
pub const STANDARD_PLACEHOLDERS: &[(&str, &str)] = &[
    ("actor", "actor.name"),
    ("impersonator", "impersonator.name"),
    ("tenant", "tenant"),
    ("target", "target.id"),
    ("reason", "outcome.reason"),
    ("ip", "context.ip"),
    ("user_agent", "context.user_agent"),
    ("request_id", "context.request_id"),
    ("htaccess_user", "context.htaccess_user"),
    ("source", "context.source"),
];

/// Everything known about one action at compile time.
///
/// Built by [`actions!`](crate::actions!); read it through the accessors.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ActionSpec {
    pub(crate) name: &'static str,
    pub(crate) trail: &'static str,
    pub(crate) target: &'static str,
    pub(crate) fields: &'static [&'static str],
    pub(crate) en: &'static str,
    pub(crate) de: &'static str,
}

impl ActionSpec {
    /// The stable dotted name stored in the trail, e.g. `database.create`.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The trail the action is recorded in, e.g. `admin`.
    pub const fn trail(&self) -> &'static str {
        self.trail
    }

    /// The type of resource the action's target is, e.g. `database`.
    pub const fn target(&self) -> &'static str {
        self.target
    }

    /// The metadata fields the action expects (and its messages may name).
    pub const fn fields(&self) -> &'static [&'static str] {
        self.fields
    }

    /// The English message template, e.g. `{actor} created database {target}`.
    pub const fn english(&self) -> &'static str {
        self.en
    }

    /// The German message template, e.g. `{actor} hat Datenbank {target} angelegt`.
    pub const fn german(&self) -> &'static str {
        self.de
    }
}

/// An action that can be recorded with [`audit!`](crate::audit!).
///
/// Implemented by every enum declared with [`actions!`](crate::actions!),
/// among them the shipped [`HostingAction`](crate::HostingAction).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an audit action",
    label = "expected an action such as `trailseal::HostingAction::DatabaseCreate`",
    note = "actions are enum variants declared with `trailseal::actions!`; use the shipped `trailseal::HostingAction` or declare your own"
)]
pub trait Action: Copy + fmt::Debug + Send + Sync + 'static {
    /// Every action of the set, in declaration order.
    const ALL: &'static [Self];

    /// The action's compile-time description.
    fn spec(self) -> &'static ActionSpec;

    /// The action whose stable name is `name`, if the set has one.
    fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|action| action.spec().name == name)
    }
}

/// Finds an action's description by the name stored in an entry, over one or
/// more sets of actions (the shipped hosting taxonomy, the panel's own).
///
/// Rendering uses a catalog to find an entry's message templates; actions it
/// does not know get a generic sentence.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    specs: HashMap<&'static str, &'static ActionSpec>,
}

impl Catalog {
    /// A catalog without any action.
    pub fn new() -> Self {
        Self::default()
    }

    /// A catalog of the shipped [`HostingAction`](crate::HostingAction)s.
    pub fn hosting() -> Self {
        Self::new().with::<crate::HostingAction>()
    }

    /// Adds a set of actions. Where two sets use the same name, the one added
    /// last wins, so a panel can replace a shipped action's messages.
    pub fn with<A: Action>(mut self) -> Self {
        for action in A::ALL {
            let spec = action.spec();
            self.specs.insert(spec.name, spec);
        }
        self
    }

    /// The action of that stored name, if known.
    pub fn get(&self, name: &str) -> Option<&'static ActionSpec> {
        self.specs.get(name).copied()
    }

    /// Number of actions known.
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    /// Whether no action is known.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }
}

/// Declares a set of actions: an enum whose variants are the actions, with
/// their stable names, trails, target types, expected metadata fields and
/// English and German message templates.
///
/// ```
/// trailseal::actions! {
///     /// What the shop module of our panel records.
///     pub enum ShopAction {
///         /// A customer redeemed a voucher.
///         VoucherRedeem = "voucher.redeem" {
///             trail: "admin",
///             target: "voucher",
///             fields: ["value_cents"],
///             en: "{actor} redeemed voucher {target} worth {value_cents} cents",
///             de: "{actor} hat Gutschein {target} im Wert von {value_cents} Cent eingelöst",
///         },
///     }
/// }
///
/// use trailseal::event::Action;
/// assert_eq!(ShopAction::VoucherRedeem.name(), "voucher.redeem");
/// assert_eq!(ShopAction::from_name("voucher.redeem"), Some(ShopAction::VoucherRedeem));
/// assert_eq!(ShopAction::VoucherRedeem.spec().target(), "voucher");
/// ```
///
/// The declaration is checked at compile time: names must be dotted
/// lower-case words (`a-z 0-9 _ -`) and unique within the set, trails valid
/// trail names, and templates may only name the
/// [standard placeholders](crate::event::STANDARD_PLACEHOLDERS) and the action's
/// own `fields`, without control characters. A mistake stops the build with
/// a message naming the action.
///
/// Each variant's documentation is generated from its declaration, with
/// both sentences; the enum's documentation gets a table of all of them.
#[macro_export]
macro_rules! actions {
    (
        $(#[$meta:meta])*
        $vis:vis enum $Name:ident {
            $(
                $(#[$vmeta:meta])*
                $Variant:ident = $name:literal {
                    trail: $trail:literal,
                    target: $target:literal,
                    $(fields: [$($field:literal),* $(,)?],)?
                    en: $en:literal,
                    de: $de:literal $(,)?
                }
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        ///
        /// | Action | Trail | Target | English | German |
        /// |---|---|---|---|---|
        $(
            #[doc = ::core::concat!(
                "| [`", $name, "`](", ::core::stringify!($Name), "::", ::core::stringify!($Variant),
                ") | `", $trail, "` | `", $target, "` | ", $en, " | ", $de, " |"
            )]
        )*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $Name {
            $(
                #[doc = ::core::concat!("`", $name, "`: *", $en, "*")]
                ///
                $(#[$vmeta])*
                ///
                #[doc = ::core::concat!("- Trail: `", $trail, "`")]
                #[doc = ::core::concat!("- Target: `", $target, "`")]
                $(#[doc = ::core::concat!("- Fields:", $(" `", $field, "`"),*)])?
                #[doc = ::core::concat!("- English: *", $en, "*")]
                #[doc = ::core::concat!("- German: *", $de, "*")]
                $Variant,
            )*
        }

        impl $Name {
            /// The compile-time descriptions, in declaration order (the
            /// order of the variants, so a variant's index finds its own).
            const SPECS: &'static [$crate::event::ActionSpec] = &[
                $(
                    $crate::__macro_support::spec(
                        $name,
                        $trail,
                        $target,
                        &[$($($field),*)?],
                        $en,
                        $de,
                    ),
                )*
            ];

            /// The action's compile-time description.
            $vis const fn spec(self) -> &'static $crate::event::ActionSpec {
                &Self::SPECS[self as usize]
            }

            /// The stable dotted name stored in the trail.
            $vis const fn name(self) -> &'static str {
                self.spec().name()
            }

            /// The action whose stable name is `name`, if the set has one.
            $vis fn from_name(name: &str) -> ::core::option::Option<Self> {
                match name {
                    $($name => ::core::option::Option::Some(Self::$Variant),)*
                    _ => ::core::option::Option::None,
                }
            }
        }

        impl $crate::event::Action for $Name {
            const ALL: &'static [Self] = &[$(Self::$Variant),*];

            fn spec(self) -> &'static $crate::event::ActionSpec {
                $Name::spec(self)
            }

            fn from_name(name: &str) -> ::core::option::Option<Self> {
                $Name::from_name(name)
            }
        }

        impl ::core::fmt::Display for $Name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.name())
            }
        }

        // Checked when the crate that declares the actions is compiled, so a
        // bad declaration never reaches a running panel.
        $(
            const _: () = {
                use $crate::__macro_support::checks;
                if !checks::valid_action_name($name) {
                    ::core::panic!("{}", ::core::concat!(
                        "in actions!, `", $name, "`: an action name must be dotted lower-case words (a-z, 0-9, '_', '-') such as \"database.create\""
                    ));
                }
                if !checks::valid_trail_name($trail) {
                    ::core::panic!("{}", ::core::concat!(
                        "in actions!, `", $name, "`: the trail \"", $trail, "\" is not a trail name (1-64 of a-z, 0-9, '-', '_')"
                    ));
                }
                if !checks::valid_word($target) {
                    ::core::panic!("{}", ::core::concat!(
                        "in actions!, `", $name, "`: the target type \"", $target, "\" must be a lower-case word such as \"database\""
                    ));
                }
                if !checks::valid_words(&[$($($field),*)?]) {
                    ::core::panic!("{}", ::core::concat!(
                        "in actions!, `", $name, "`: fields must be lower-case words such as \"size_mb\""
                    ));
                }
                if !checks::valid_template($en, &[$($($field),*)?]) {
                    ::core::panic!("{}", ::core::concat!(
                        "in actions!, `", $name, "`: the English message names a {placeholder} that is neither standard nor one of the action's fields, has an unpaired brace or a control character"
                    ));
                }
                if !checks::valid_template($de, &[$($($field),*)?]) {
                    ::core::panic!("{}", ::core::concat!(
                        "in actions!, `", $name, "`: the German message names a {placeholder} that is neither standard nor one of the action's fields, has an unpaired brace or a control character"
                    ));
                }
            };
        )*
        const _: () = {
            if $crate::__macro_support::checks::duplicate_name($Name::SPECS).is_some() {
                ::core::panic!("{}", ::core::concat!(
                    "in actions!, enum ", ::core::stringify!($Name), ": two actions have the same name; names must be unique"
                ));
            }
        };
    };
}

/// Compile-time checks of an action declaration, run in `const` context by
/// [`actions!`](crate::actions!), which turns a `false` into a compile error
/// naming the action.
pub mod checks {
    use crate::event::MAX_ACTION_LEN;
    use crate::event::{ActionSpec, STANDARD_PLACEHOLDERS};
    use crate::model::MAX_TRAIL_NAME_LEN;

    const fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }

    const fn is_word_byte(b: u8) -> bool {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
    }

    /// Dotted lower-case words: the same rule `Event::validate` applies.
    pub const fn valid_action_name(name: &str) -> bool {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes.len() > MAX_ACTION_LEN {
            return false;
        }
        let mut segment_len = 0;
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'.' {
                if segment_len == 0 {
                    return false;
                }
                segment_len = 0;
            } else if is_word_byte(bytes[i]) {
                segment_len += 1;
            } else {
                return false;
            }
            i += 1;
        }
        segment_len > 0
    }

    /// 1–64 of `a-z 0-9 - _`: the rule of `validate_trail_name`.
    pub const fn valid_trail_name(name: &str) -> bool {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes.len() > MAX_TRAIL_NAME_LEN {
            return false;
        }
        let mut i = 0;
        while i < bytes.len() {
            if !is_word_byte(bytes[i]) {
                return false;
            }
            i += 1;
        }
        true
    }

    /// A lower-case word (`a-z 0-9 _`): target types and field names.
    pub const fn valid_word(name: &str) -> bool {
        let bytes = name.as_bytes();
        if bytes.is_empty() {
            return false;
        }
        let mut i = 0;
        while i < bytes.len() {
            if !(bytes[i].is_ascii_lowercase() || bytes[i].is_ascii_digit() || bytes[i] == b'_') {
                return false;
            }
            i += 1;
        }
        true
    }

    /// Every name is a lower-case word.
    pub const fn valid_words(names: &[&str]) -> bool {
        let mut i = 0;
        while i < names.len() {
            if !valid_word(names[i]) {
                return false;
            }
            i += 1;
        }
        true
    }

    /// Control characters, Unicode line separators and bidirectional
    /// overrides have no place in a template: they could forge a line.
    const fn has_dangerous_bytes(text: &[u8]) -> bool {
        let mut i = 0;
        while i < text.len() {
            let b = text[i];
            if b < 0x20 || b == 0x7F {
                return true;
            }
            // U+0080..U+009F (C1 controls) are C2 80..C2 9F in UTF-8.
            if b == 0xC2 && i + 1 < text.len() && text[i + 1] >= 0x80 && text[i + 1] <= 0x9F {
                return true;
            }
            // U+2028..U+202E are E2 80 A8..AE; U+2066..U+2069 are E2 81 A6..A9.
            if b == 0xE2 && i + 2 < text.len() {
                let (b1, b2) = (text[i + 1], text[i + 2]);
                if (b1 == 0x80 && b2 >= 0xA8 && b2 <= 0xAE)
                    || (b1 == 0x81 && b2 >= 0xA6 && b2 <= 0xA9)
                {
                    return true;
                }
            }
            i += 1;
        }
        false
    }

    const fn known_placeholder(name: &[u8], fields: &[&str]) -> bool {
        let mut i = 0;
        while i < STANDARD_PLACEHOLDERS.len() {
            if bytes_eq(name, STANDARD_PLACEHOLDERS[i].0.as_bytes()) {
                return true;
            }
            i += 1;
        }
        let mut i = 0;
        while i < fields.len() {
            if bytes_eq(name, fields[i].as_bytes()) {
                return true;
            }
            i += 1;
        }
        false
    }

    /// Braces pair up, and every `{name}` is a standard placeholder or a
    /// declared field.
    pub const fn valid_template(template: &str, fields: &[&str]) -> bool {
        let bytes = template.as_bytes();
        if bytes.is_empty() || has_dangerous_bytes(bytes) {
            return false;
        }
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'{' => {
                    let start = i + 1;
                    let mut end = start;
                    while end < bytes.len() && bytes[end] != b'}' {
                        if bytes[end] == b'{' {
                            return false;
                        }
                        end += 1;
                    }
                    if end == bytes.len() {
                        return false;
                    }
                    let (_, rest) = bytes.split_at(start);
                    let (name, _) = rest.split_at(end - start);
                    if !known_placeholder(name, fields) {
                        return false;
                    }
                    i = end + 1;
                }
                b'}' => return false,
                _ => i += 1,
            }
        }
        true
    }

    /// The index of the first action whose name an earlier one already uses.
    pub const fn duplicate_name(specs: &[ActionSpec]) -> Option<usize> {
        let mut i = 0;
        while i < specs.len() {
            let mut j = 0;
            while j < i {
                if bytes_eq(specs[i].name.as_bytes(), specs[j].name.as_bytes()) {
                    return Some(i);
                }
                j += 1;
            }
            i += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::checks::*;
    use super::*;
    use crate::HostingAction;

    #[test]
    fn action_names_follow_the_event_rule() {
        for good in [
            "database.create",
            "a",
            "dns.zone.create",
            "php_mail.send",
            "x-y.z9",
        ] {
            assert!(valid_action_name(good), "{good}");
            let event = crate::Event::builder(good)
                .actor(crate::Actor::system("t"))
                .build();
            assert!(event.is_ok(), "{good}");
        }
        for bad in ["", "Database.create", "a..b", ".a", "a.", "a b", "a\n"] {
            assert!(!valid_action_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn templates_may_only_name_known_placeholders() {
        assert!(valid_template("{actor} created database {target}", &[]));
        assert!(valid_template("{actor} set {size_mb}", &["size_mb"]));
        assert!(!valid_template("{actr} created database {target}", &[]));
        assert!(!valid_template("{actor} set {size_mb}", &[]));
        assert!(!valid_template("{actor created", &[]));
        assert!(!valid_template("actor} created", &[]));
        assert!(!valid_template("{{actor}}", &[]));
        assert!(!valid_template("{}", &[]));
        assert!(!valid_template("line one\nline two", &[]));
        assert!(!valid_template("evil \u{202E} override", &[]));
        assert!(!valid_template("c1 \u{85} control", &[]));
        assert!(valid_template("Größe {actor} – fine", &[]));
    }

    #[test]
    fn catalog_finds_actions_by_stored_name() {
        let catalog = Catalog::hosting();
        assert_eq!(catalog.len(), HostingAction::ALL.len());
        let spec = catalog.get("database.create").expect("shipped");
        assert_eq!(spec.trail(), "admin");
        assert_eq!(spec.target(), "database");
        assert!(catalog.get("database.creat").is_none());
    }

    #[test]
    fn later_sets_override_earlier_ones() {
        crate::actions! {
            enum Override {
                DatabaseCreate = "database.create" {
                    trail: "admin",
                    target: "database",
                    en: "{actor} made database {target}",
                    de: "{actor} hat Datenbank {target} gemacht",
                },
            }
        }
        let catalog = Catalog::hosting().with::<Override>();
        assert_eq!(catalog.len(), HostingAction::ALL.len());
        assert_eq!(
            catalog.get("database.create").map(ActionSpec::english),
            Some("{actor} made database {target}")
        );
        assert_eq!(Override::DatabaseCreate.to_string(), "database.create");
    }
}
