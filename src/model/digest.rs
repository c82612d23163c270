//! Fixed-size byte values of the format: MACs, digests and salts.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! hex_bytes {
    ($(#[$doc:meta])* $name:ident, $len:expr, $what:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Eq)]
        pub struct $name([u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// Wraps raw bytes.
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Lower-case hexadecimal, as in the stored and exported format.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parses lower-case hexadecimal of exactly the right length,
            /// the one form the format writes: upper-case digits would be a
            /// second stored form of the same value.
            pub fn from_hex(text: &str) -> Result<Self, super::FormatError> {
                let mut bytes = [0u8; $len];
                let invalid = || super::FormatError::Hex {
                    what: $what,
                    expected_bytes: $len,
                };
                if text.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Err(invalid());
                }
                hex::decode_to_slice(text, &mut bytes).map_err(|_| invalid())?;
                Ok(Self(bytes))
            }

            /// Parses a slice of exactly the right length.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, super::FormatError> {
                <[u8; $len]>::try_from(bytes)
                    .map(Self)
                    .map_err(|_| super::FormatError::Length {
                        what: $what,
                        expected_bytes: $len,
                        actual_bytes: bytes.len(),
                    })
            }
        }

        // Equality is constant-time: these values are compared while
        // verifying, and a timing side channel must not reveal how many
        // leading bytes of a forged MAC were right. (A word at a time:
        // comparing byte by byte behind a barrier each took 3 % of
        // verification.)
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                constant_time_eq::constant_time_eq_n(&self.0, &other.0)
            }
        }

        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.0.hash(state);
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        // Both directions go through the stack: a body holds several of
        // these, and a heap string each would dominate encoding and decoding.
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut hex = [0u8; 2 * $len];
                hex::encode_to_slice(self.0, &mut hex).map_err(serde::ser::Error::custom)?;
                let text = std::str::from_utf8(&hex).map_err(serde::ser::Error::custom)?;
                serializer.serialize_str(text)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct HexVisitor;

                impl serde::de::Visitor<'_> for HexVisitor {
                    type Value = $name;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "{} bytes as hexadecimal", $len)
                    }

                    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<$name, E> {
                        $name::from_hex(text).map_err(E::custom)
                    }
                }

                deserializer.deserialize_str(HexVisitor)
            }
        }
    };
}

hex_bytes!(
    /// An HMAC-SHA256 tag: an entry's `mac` or `prev_mac`.
    Mac,
    32,
    "MAC"
);

hex_bytes!(
    /// A SHA-256 digest: a body commitment or a personal field's commitment.
    Digest,
    32,
    "digest"
);

hex_bytes!(
    /// The random per-field salt of a personal field's commitment.
    Salt,
    16,
    "salt"
);
