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

/// Lines decoded at once: enough to keep every core busy, few enough that
/// memory stays flat on any export.
const DECODE_BLOCK_LINES: usize = 1024;

/// Reads entries back from JSON Lines, one per line, streaming. Blank lines
/// are skipped; a malformed line is an error naming its line number.
///
/// Lines are read in blocks and decoded in parallel on the current rayon
/// pool; entries still come out in file order.
pub struct JsonLinesReader<R> {
    input: R,
    /// Lines read so far.
    line: u64,
    /// The text of the block being read, and where each of its lines ends.
    block: Vec<u8>,
    ends: Vec<usize>,
    decoded: std::vec::IntoIter<Result<Entry, StoreError>>,
    failed: bool,
}

impl<R: BufRead> JsonLinesReader<R> {
    /// Reads from `input`.
    pub fn new(input: R) -> Self {
        Self {
            input,
            line: 0,
            block: Vec::new(),
            ends: Vec::new(),
            decoded: Vec::new().into_iter(),
            failed: false,
        }
    }

    /// Reads and decodes the next block; false at the end of the input.
    fn next_block(&mut self) -> bool {
        use rayon::prelude::*;
        self.block.clear();
        self.ends.clear();
        let first_line = self.line + 1;
        let mut read_error = None;
        while self.ends.len() < DECODE_BLOCK_LINES {
            match self.input.read_until(b'\n', &mut self.block) {
                Ok(0) => break,
                Ok(_) => self.ends.push(self.block.len()),
                Err(err) => {
                    read_error = Some(err);
                    break;
                }
            }
        }
        self.line += self.ends.len() as u64;
        let block = &self.block;
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        let lines: Vec<(u64, &[u8])> = starts
            .zip(self.ends.iter().copied())
            .zip(first_line..)
            .map(|((start, end), line)| (line, &block[start..end]))
            .collect();
        let mut decoded: Vec<Result<Entry, StoreError>> = lines
            .par_iter()
            .with_min_len(64)
            .filter_map(|&(line, text)| decode_line(line, text))
            .collect();
        if let Some(err) = read_error {
            // What was read before the failure still counts; the failure
            // ends the export.
            self.failed = true;
            decoded.push(Err(StoreError::MalformedExport {
                line: self.line + 1,
                reason: err.to_string(),
            }));
        }
        let more = !decoded.is_empty() || !self.ends.is_empty();
        self.decoded = decoded.into_iter();
        more
    }
}

/// One line as an entry; `None` for a blank line.
fn decode_line(line: u64, text: &[u8]) -> Option<Result<Entry, StoreError>> {
    let blank = text.first() != Some(&b'{')
        && std::str::from_utf8(text).is_ok_and(|text| text.trim().is_empty());
    if blank {
        return None;
    }
    Some(
        serde_json::from_slice(text).map_err(|err| StoreError::MalformedExport {
            line,
            reason: format!(
                "not an entry (column {}): {}",
                err.column(),
                err.classify_name()
            ),
        }),
    )
}

impl<R: BufRead> Iterator for JsonLinesReader<R> {
    type Item = Result<Entry, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.decoded.next() {
                return Some(item);
            }
            if self.failed || !self.next_block() {
                return None;
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
