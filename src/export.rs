//! JSON Lines export: every stored field of every entry, one entry per line,
//! so an auditor can verify a trail offline with the same result as on the
//! database.

use std::io::{BufRead, Write};

use futures_util::StreamExt;

use crate::StoreError;
use crate::entry::Entry;
use crate::store::Store;

/// Writes the given trails (all when empty) as JSON Lines, trail by trail in
/// seq order, streaming. Returns the number of entries written.
pub async fn export_json_lines<W: Write>(
    store: &dyn Store,
    trails: &[String],
    out: &mut W,
) -> Result<u64, StoreError> {
    let trails = if trails.is_empty() {
        store.trails().await?
    } else {
        trails.to_vec()
    };
    let mut written = 0;
    let io_error = |source| StoreError::Io {
        path: "<export>".into(),
        source,
    };
    for trail in &trails {
        let mut entries = store.scan(trail, 0);
        while let Some(entry) = entries.next().await {
            write_entry_line(out, &entry?).map_err(io_error)?;
            written += 1;
        }
    }
    out.flush().map_err(io_error)?;
    Ok(written)
}

/// Writes one entry as one line of JSON Lines.
pub(crate) fn write_entry_line<W: Write + ?Sized>(
    out: &mut W,
    entry: &Entry,
) -> std::io::Result<()> {
    // serde_json escapes every control character, so one entry is always
    // exactly one line.
    serde_json::to_writer(&mut *out, entry).map_err(std::io::Error::other)?;
    out.write_all(b"\n")
}

/// Reads entries back from JSON Lines, one per line, streaming. Blank lines
/// are skipped; a malformed line is an error naming its line number.
pub struct JsonLinesReader<R> {
    input: R,
    line: u64,
    buffer: String,
}

impl<R: BufRead> JsonLinesReader<R> {
    /// Reads from `input`.
    pub fn new(input: R) -> Self {
        Self {
            input,
            line: 0,
            buffer: String::new(),
        }
    }
}

impl<R: BufRead> Iterator for JsonLinesReader<R> {
    type Item = Result<Entry, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buffer.clear();
            self.line += 1;
            match self.input.read_line(&mut self.buffer) {
                Ok(0) => return None,
                Ok(_) if self.buffer.trim().is_empty() => continue,
                Ok(_) => {
                    return Some(serde_json::from_str(&self.buffer).map_err(|err| {
                        StoreError::MalformedExport {
                            line: self.line,
                            reason: format!(
                                "not an entry (column {}): {}",
                                err.column(),
                                err.classify_name()
                            ),
                        }
                    }));
                }
                Err(err) => {
                    return Some(Err(StoreError::MalformedExport {
                        line: self.line,
                        reason: err.to_string(),
                    }));
                }
            }
        }
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        // The message of a serde_json error may quote the input; only its
        // category is shown.
        match self.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "invalid JSON",
            serde_json::error::Category::Data => "a field is missing or has the wrong type",
            serde_json::error::Category::Eof => "the line ends early",
        }
    }
}
