//! JSON Lines export: every stored field of every entry, one entry per line,
//! so an auditor can verify a trail offline with the same result as on the
//! database.

use std::io::{BufRead, Write};

use futures_util::StreamExt;

use crate::StoreError;
use crate::model::Entry;
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

/// The longest line read from an export, in bytes: far more than any entry
/// a writer seals (every field is bounded), while a file without line
/// breaks cannot make the reader hold gigabytes. A longer line is an error
/// at its line, and reading goes on after it.
pub const MAX_EXPORT_LINE: usize = 16 << 20;

/// Reads one line of at most `limit` bytes (its newline included) onto
/// `buffer`: `Some(true)` for a line, `Some(false)` for a longer one (then
/// skipped to its end, nothing appended), `None` at the end of the input.
fn read_bounded_line<R: BufRead>(
    input: &mut R,
    buffer: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<Option<bool>> {
    let start = buffer.len();
    let mut too_long = false;
    let mut read_any = false;
    loop {
        let available = input.fill_buf()?;
        if available.is_empty() {
            break;
        }
        read_any = true;
        let (taken, done) = match available.iter().position(|&byte| byte == b'\n') {
            Some(at) => (at + 1, true),
            None => (available.len(), false),
        };
        if !too_long {
            if buffer.len() - start + taken > limit {
                too_long = true;
                buffer.truncate(start);
            } else {
                buffer.extend_from_slice(&available[..taken]);
            }
        }
        input.consume(taken);
        if done {
            break;
        }
    }
    Ok(read_any.then_some(!too_long))
}

/// Reads entries back from JSON Lines, one per line, streaming. Blank lines
/// are skipped; a malformed line is an error naming its line number.
///
/// Lines are read in blocks and decoded in parallel on the current rayon
/// pool, the next block while the caller works on the current one; entries
/// still come out in file order.
pub struct JsonLinesReader<R> {
    input: R,
    /// Lines read so far.
    line: u64,
    /// Blocks being decoded, oldest first.
    in_flight: std::collections::VecDeque<std::sync::mpsc::Receiver<DecodedBlock>>,
    decoded: std::vec::IntoIter<Decoded>,
    /// Buffers of blocks already decoded, kept for the next blocks: a
    /// fresh buffer would grow by copying and fault in new pages each time.
    spare_buffers: Vec<Vec<u8>>,
    /// The input ended or failed: nothing more is read.
    exhausted: bool,
}

type Decoded = Result<Entry, StoreError>;

/// The entries of a block, and the block's buffer handed back for reuse.
struct DecodedBlock {
    entries: Vec<Decoded>,
    buffer: Vec<u8>,
}

/// Blocks decoded ahead of the one the caller reads: enough to keep the
/// cores busy, few enough to keep memory flat.
const BLOCKS_AHEAD: usize = 2;

impl<R: BufRead> JsonLinesReader<R> {
    /// Reads from `input`.
    pub fn new(input: R) -> Self {
        Self {
            input,
            line: 0,
            in_flight: std::collections::VecDeque::new(),
            decoded: Vec::new().into_iter(),
            spare_buffers: Vec::new(),
            exhausted: false,
        }
    }

    /// Reads the next block and starts decoding it; false at the end of
    /// the input.
    fn read_block(&mut self) -> bool {
        let mut block = self.spare_buffers.pop().unwrap_or_default();
        block.clear();
        let mut ends = Vec::with_capacity(DECODE_BLOCK_LINES);
        let mut too_long = Vec::new();
        let first_line = self.line + 1;
        let mut read_error = None;
        while ends.len() < DECODE_BLOCK_LINES {
            match read_bounded_line(&mut self.input, &mut block, MAX_EXPORT_LINE) {
                Ok(None) => {
                    self.exhausted = true;
                    break;
                }
                Ok(Some(fits)) => {
                    if !fits {
                        too_long.push(first_line + ends.len() as u64);
                    }
                    ends.push(block.len());
                }
                Err(err) => {
                    read_error = Some(err);
                    self.exhausted = true;
                    break;
                }
            }
        }
        self.line += ends.len() as u64;
        // What was read before a failure still counts; the failure ends
        // the export.
        let failure = read_error.map(|err| StoreError::MalformedExport {
            line: self.line + 1,
            reason: err.to_string(),
        });
        if ends.is_empty() && failure.is_none() {
            return false;
        }
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        rayon::spawn(move || {
            let mut entries = decode_block(&block, &ends, first_line, &too_long);
            entries.extend(failure.map(Err));
            // The reader may have been dropped; then nobody needs the block.
            let _ = sender.send(DecodedBlock {
                entries,
                buffer: block,
            });
        });
        self.in_flight.push_back(receiver);
        true
    }
}

/// Decodes a block of lines in parallel, keeping their order; the lines
/// numbered in `too_long` were too long to read.
fn decode_block(block: &[u8], ends: &[usize], first_line: u64, too_long: &[u64]) -> Vec<Decoded> {
    use rayon::prelude::*;
    let starts = std::iter::once(0).chain(ends.iter().copied());
    let lines: Vec<(u64, &[u8])> = starts
        .zip(ends.iter().copied())
        .zip(first_line..)
        .map(|((start, end), line)| (line, &block[start..end]))
        .collect();
    lines
        .par_iter()
        .with_min_len(64)
        .filter_map(|&(line, text)| {
            if too_long.contains(&line) {
                return Some(Err(StoreError::MalformedExport {
                    line,
                    reason: format!("longer than {MAX_EXPORT_LINE} bytes"),
                }));
            }
            decode_line(line, text)
        })
        .collect()
}

/// One line as an entry; `None` for a blank line.
fn decode_line(line: u64, text: &[u8]) -> Option<Decoded> {
    // Checking the whole line at once is faster than serde_json checking
    // each string on its own.
    let text = match std::str::from_utf8(text) {
        Ok(text) => text,
        Err(err) => {
            return Some(Err(StoreError::MalformedExport {
                line,
                reason: format!("not UTF-8 (byte {})", err.valid_up_to() + 1),
            }));
        }
    };
    if text.trim().is_empty() {
        return None;
    }
    Some(serde_json::from_str(text).map_err(|err| {
        let reason = format!(
            "not an entry in its stored form (column {}): {}",
            err.column(),
            err.classify_name()
        );
        // A damaged line that still names its trail and seq is a finding
        // of that entry; only a line that names nothing is the export's.
        match EntryId::of(text) {
            Some(EntryId { trail, seq }) => StoreError::Corrupt { trail, seq, reason },
            None => StoreError::MalformedExport { line, reason },
        }
    }))
}

/// The trail and seq of a line that is not an entry, if it states them.
#[derive(serde::Deserialize)]
struct EntryId {
    trail: String,
    seq: u64,
}

impl EntryId {
    fn of(text: &str) -> Option<Self> {
        serde_json::from_str::<EntryId>(text).ok()
    }
}

impl<R: BufRead> Iterator for JsonLinesReader<R> {
    type Item = Decoded;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.decoded.next() {
                return Some(item);
            }
            while !self.exhausted && self.in_flight.len() <= BLOCKS_AHEAD {
                if !self.read_block() {
                    break;
                }
            }
            let receiver = self.in_flight.pop_front()?;
            let Some(decoded) = wait_for(&receiver) else {
                // Decoding a block cannot fail as such; if its task was lost
                // anyway, the export ends here with an error, never silently.
                self.exhausted = true;
                self.in_flight.clear();
                return Some(Err(StoreError::MalformedExport {
                    line: self.line,
                    reason: "the decoder stopped".into(),
                }));
            };
            self.decoded = decoded.entries.into_iter();
            self.spare_buffers.push(decoded.buffer);
        }
    }
}

/// Waits for a block being decoded. On a pool thread, it helps with the
/// pool's work instead of blocking: with a one-thread pool, the block's
/// decoding could otherwise never run.
fn wait_for<T>(receiver: &std::sync::mpsc::Receiver<T>) -> Option<T> {
    use std::sync::mpsc::TryRecvError;
    loop {
        match receiver.try_recv() {
            Ok(value) => return Some(value),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => match rayon::yield_now() {
                Some(rayon::Yield::Executed) => {}
                Some(rayon::Yield::Idle) => {
                    std::thread::sleep(std::time::Duration::from_micros(20))
                }
                None => return receiver.recv().ok(),
            },
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
