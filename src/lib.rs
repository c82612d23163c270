#![doc = include_str!("lib.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]
#![warn(unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod access;
mod action;
mod checkpoint;
mod clock;
mod context;
mod entry;
mod error;
mod event;
mod export;
mod hosting;
pub mod ingest;
mod macros;
mod projection;
mod render;
pub mod retention;
mod seal;
mod secrets;
mod store;
mod trail;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod transaction;
mod verify;

pub use access::{AccessError, AuditReader, CSV_COLUMNS, Subject};
pub use action::{Action, ActionSpec, Catalog, STANDARD_PLACEHOLDERS};
pub use checkpoint::{Checkpoint, CheckpointError, MAX_CHECKPOINT_FILE};
pub use clock::{Clock, MAX_CLOCK_SKEW, ManualClock, SystemClock};
pub use context::AuditContext;
pub use entry::{Body, Entry, EntryKind, Field, Head};
pub use error::{Error, FormatError, KeyError, Result, StoreError};
pub use event::{
    Actor, ActorKind, Change, Context, Event, EventBuilder, Location, MAX_ACTION_LEN, MAX_CHANGES,
    MAX_IDENTIFIER_LEN, MAX_METADATA_DEPTH, MAX_METADATA_LEN, MAX_TEXT_LEN, Outcome, Source,
    Target, ValidationError, canonical_json, escape_text, network_of,
};
pub use export::{JsonLinesReader, MAX_EXPORT_LINE, export_json_lines};
pub use hosting::HostingAction;
#[doc(hidden)]
pub use macros::__macro_support;
pub use macros::Recording;
pub use projection::{
    AccountLogins, INVENTORY_TYPES, LOGIN_ACTIONS, LoginAttempt, LoginHistory, Projection,
    Replayed, Resource, ResourceInventory, replay, replay_from, replay_query,
};
pub use render::{Language, render, render_lines};
pub use seal::{
    DEFAULT_EPOCH_SECONDS, Digest, EntryDraft, EpochSchedule, FORMAT_V1, FORMAT_V2, FORMAT_VERSION,
    KEY_LEN, KeyLine, Mac, MacInput, SEALING_KEY_FILE, Salt, Sealer, SealingKey,
    VERIFICATION_KEY_FILE, VerificationKey, body_commitment, describe_schedule, encode_body,
    field_commitment, format_timestamp, genesis_prev_mac, key_file_exposure, new_key_id,
    truncate_to_micros,
};
pub use secrets::{
    SECRET_MARKER, SECRET_NAMES, SecretPolicy, is_secret_name, register_secret_names,
};
pub use store::{
    CopyMismatch, Cursor, DEFAULT_PAGE_SIZE, EntryStream, EpochSummary, Erasure, MAX_PAGE_SIZE,
    MemoryStore, Order, Page, PreviousAppend, PreviousOutcome, Query, Store, StoredEntry,
    StoredEntryStream, check_batch, counts_in_epoch, query_by_scan,
};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use store::{DEFAULT_WAL_CHECKPOINT_PAGES, SqliteStore, SqliteStoreOptions, SqliteSync};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use store::{PostgresStore, PostgresStoreOptions};
pub use trail::{
    DEFAULT_MAX_BATCH, DEFAULT_MAX_CONFLICTS, DEFAULT_QUEUE_CAPACITY, MAX_TRAIL_NAME_LEN, Receipt,
    Trail, TrailBuilder, validate_trail_name,
};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub use transaction::TransactionRecorder;
pub use verify::{
    DEFAULT_MINIMUM_RETENTION_DAYS, DEFAULT_REORDER_WINDOW, Finding, FindingKind, PrunedNotice,
    ReportHead, SnapshotNotice, TrailReport, TrailVerification, Verifier, VerifyError,
};
