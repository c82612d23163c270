//! Reading a trail: projections and replay, the audited tenant-confined
//! reader and a data subject's exports, JSON Lines exports and their
//! reader, and sentences for people.

mod access;
mod export;
mod projection;
mod render;

pub use access::{AccessError, AuditReader, CSV_COLUMNS, Subject};
pub(crate) use export::write_entry_line;
pub use export::{JsonLinesReader, MAX_EXPORT_LINE, export_json_lines};
pub use projection::{
    AccountLogins, INVENTORY_TYPES, LOGIN_ACTIONS, LoginAttempt, LoginHistory, Projection,
    Replayed, Resource, ResourceInventory, replay, replay_from, replay_query,
};
pub use render::{Language, render, render_lines};
