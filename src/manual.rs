//! The manual: the long-form documentation of the repository's `docs/`
//! folder, here so that it reads beside the API on docs.rs. Each page is a
//! module with nothing in it but its text.

#[doc = include_str!("../docs/EMBEDDING.md")]
pub mod embedding {}

#[doc = include_str!("../docs/EVENT_SOURCING.md")]
pub mod event_sourcing {}

#[doc = include_str!("../docs/FORMAT.md")]
pub mod format {}

#[doc = include_str!("../docs/INGEST.md")]
pub mod ingest {}

#[doc = include_str!("../docs/OPERATIONS.md")]
pub mod operations {}

#[doc = include_str!("../docs/THREAT_MODEL.md")]
pub mod threat_model {}

#[doc = include_str!("../docs/VERIFY.md")]
pub mod verify {}
