//! Bytes or text that do not follow the format.

/// Bytes or text that do not follow the trailseal format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Hexadecimal of the wrong length or with bad digits.
    #[error("{what} must be {expected_bytes} bytes of lower-case hexadecimal")]
    Hex {
        /// What was parsed.
        what: &'static str,
        /// Expected length in bytes.
        expected_bytes: usize,
    },
    /// A byte string of the wrong length.
    #[error("{what} must be {expected_bytes} bytes, found {actual_bytes}")]
    Length {
        /// What was parsed.
        what: &'static str,
        /// Expected length.
        expected_bytes: usize,
        /// Actual length.
        actual_bytes: usize,
    },
    /// An unknown entry kind code.
    #[error("unknown entry kind code {0}")]
    UnknownKind(u8),
    /// An unknown entry kind name.
    #[error("unknown entry kind {0:?}")]
    UnknownKindName(String),
    /// A trail name that is not 1–64 of `a-z 0-9 - _` (escaped).
    #[error("invalid trail name {0:?}: use 1–64 of a-z, 0-9, '-' and '_'")]
    InvalidTrailName(String),
}
