#![doc = include_str!("lib.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]
#![warn(unreachable_pub)]
#![warn(clippy::exhaustive_structs, clippy::exhaustive_enums)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// Layers, each importing only those above it (checked by
// scripts/check-layers.py).

// The format's nouns.
pub mod model;

// What applications record; sealing; storage.
pub mod event;
pub mod seal;
pub mod store;

// Writing.
pub mod write;

// Reading, ingesting, and the one-line macros.
pub mod ingest;
mod macros;
pub mod read;

// Retention, then verifying (which checks retention's records).
pub mod retention;

pub mod verify;

// The long-form documentation.
pub mod manual;

pub use event::{Actor, ActorKind, Event, EventBuilder, HostingAction};
#[doc(hidden)]
pub use macros::__macro_support;
pub use macros::Recording;
pub use model::{Body, Clock, Entry, EntryKind, Field, ManualClock, SystemClock};
pub use read::{AuditReader, Subject};
pub use seal::{KeyError, SealingKey, VerificationKey};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use store::PostgresStore;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use store::SqliteStore;
pub use store::{MemoryStore, Query, Store, StoreError};
pub use verify::{Checkpoint, Finding, FindingKind, TrailReport, Verifier, VerifyError};
pub use write::{Error, Receipt, Result, Trail, TrailBuilder};
