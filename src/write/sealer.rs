//! Sealing an event directly with a [`Sealer`], without a writer.

use chrono::{DateTime, Utc};

use super::Result;
use crate::event::Event;
use crate::model::{Entry, EntryKind};
use crate::seal::{Sealer, with_salts};

impl Sealer {
    /// Validates an event and seals it as the next entry.
    pub fn seal_event(&mut self, event: &Event, recorded_at: DateTime<Utc>) -> Result<Entry> {
        let body = with_salts(|salts| event.to_checked_body(&mut &mut *salts))??;
        Ok(self.seal_body(EntryKind::Event, body, recorded_at))
    }
}
