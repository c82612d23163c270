//! Following a log file that is still being written, like `tail -F`.
//!
//! Every entry sealed from a file carries where it came from in its
//! metadata: `log_source` (the follower's source name), `log_file` (the
//! file's identity, `device:inode`) and `log_offset` (the byte offset just
//! after its line). A batch of lines is committed with
//! [`Trail::record_batch`], all or nothing, so the newest entry of a source
//! in the trail always states exactly how far the file was sealed: on start
//! the follower reads it back and resumes there — no line lost, none sealed
//! twice, however the previous run ended.
//!
//! Rotation: when the path names another file (rename and create), the old
//! file is read to its end first (its last line even without a line break),
//! then the new one from its start. A rotated file found by its identity in
//! the same directory on start is finished first, too. When the file shrank
//! below the read position while keeping its identity (`copytruncate`), it
//! is read again from its start. Lines appended between the copy and the
//! truncation are only in the copy: that loss is inherent to copytruncate
//! and a reason to prefer rename rotation.
//!
//! Memory is bounded: three batches of events (one being read, one being
//! sealed, one being committed), one line of at most
//! [`MAX_LINE_LEN`](super::MAX_LINE_LEN) bytes (longer lines are sealed cut
//! short), and the parser's bounded state.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use serde_json::{Map, Value};

use super::fields::ParseOptions;
use super::line::LineParser;
use super::{IngestError, IngestStats, LogFormat, MAX_LINE_LEN};
use crate::event::Event;
use crate::model::{EntryKind, timer_interval};
use crate::store::{Query, Store};
use crate::write::{BatchChain, Committing, PreparedBatch, Trail};

/// Default number of lines committed per batch: as many rows as the SQLite
/// store inserts with one statement, so that a full batch is one statement
/// (1,000 lines took six).
const DEFAULT_BATCH_LINES: usize = 1024;

/// A file's identity, which survives renames: device and inode on Unix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct FileId {
    /// The device.
    pub device: u64,
    /// The inode.
    pub inode: u64,
}

impl FileId {
    fn of(metadata: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Self {
                device: metadata.dev(),
                inode: metadata.ino(),
            }
        }
        #[cfg(not(unix))]
        {
            // Without inodes a rename cannot be told from a new file; the
            // follower then relies on size alone.
            let _ = metadata;
            Self {
                device: 0,
                inode: 0,
            }
        }
    }

    fn parse(text: &str) -> Option<Self> {
        let (device, inode) = text.split_once(':')?;
        Some(Self {
            device: device.parse().ok()?,
            inode: inode.parse().ok()?,
        })
    }
}

impl std::fmt::Display for FileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.device, self.inode)
    }
}

/// How far a file has been sealed: its identity and the offset of the
/// first byte not yet sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Position {
    /// The file.
    pub file: FileId,
    /// The offset just after the last sealed line.
    pub offset: u64,
}

/// Configures a [`Follower`].
#[must_use = "a follower builder does nothing until started"]
pub struct FollowerBuilder {
    trail: Trail,
    store: Arc<dyn Store>,
    path: PathBuf,
    format: LogFormat,
    options: ParseOptions,
    source: Option<String>,
    batch_lines: usize,
}

impl FollowerBuilder {
    /// The name this source's entries carry as `log_source` (default: the
    /// path as given). Keep it stable across restarts and distinct per file.
    pub fn source(mut self, name: impl Into<String>) -> Self {
        self.source = Some(name.into());
        self
    }

    /// Parse options (default domain, time zone, year reference).
    pub fn options(mut self, options: ParseOptions) -> Self {
        self.options = options;
        self
    }

    /// Lines committed per batch (default 1024).
    pub fn batch_lines(mut self, lines: usize) -> Self {
        self.batch_lines = lines.max(1);
        self
    }

    /// Recovers the read position from the trail and returns the follower.
    /// Finding it reads the trail's entries newest first until one of this
    /// source turns up: quick for a source that was sealed before, a scan
    /// of the whole trail for a new one.
    pub async fn start(self) -> Result<Follower, IngestError> {
        let source = self
            .source
            .unwrap_or_else(|| self.path.to_string_lossy().into_owned());
        let position = recover(&*self.store, self.trail.name(), &source)
            .await
            .map_err(|source_err| IngestError::Recover {
                path: self.path.display().to_string(),
                trail: self.trail.name().to_owned(),
                source: source_err,
            })?;
        Ok(Follower {
            trail: self.trail,
            path: self.path,
            source,
            parser: LineParser::new(self.format, self.options),
            committed: position,
            reader: None,
            line: Vec::new(),
            line_len: 0,
            stats: IngestStats::default(),
            pending: IngestStats::default(),
            batch_lines: self.batch_lines,
            in_flight: std::collections::VecDeque::new(),
            chain: BatchChain::default(),
        })
    }
}

/// The newest position of `source` recorded in `trail`.
async fn recover(
    store: &dyn Store,
    trail: &str,
    source: &str,
) -> Result<Option<Position>, crate::StoreError> {
    let mut query = Query::new()
        .trail(trail)
        .kind(EntryKind::Event)
        .newest_first()
        .limit(1000);
    loop {
        let page = store.query(&query).await?;
        for entry in &page.entries {
            let Some(metadata) = entry.value("metadata") else {
                continue;
            };
            let Ok(metadata) = serde_json::from_str::<Map<String, Value>>(metadata) else {
                continue;
            };
            if metadata.get("log_source").and_then(Value::as_str) != Some(source) {
                continue;
            }
            let file = metadata
                .get("log_file")
                .and_then(Value::as_str)
                .and_then(FileId::parse);
            let offset = metadata.get("log_offset").and_then(Value::as_u64);
            if let (Some(file), Some(offset)) = (file, offset) {
                return Ok(Some(Position { file, offset }));
            }
        }
        match page.next {
            Some(cursor) => query = query.after(cursor),
            None => return Ok(None),
        }
    }
}

/// An open file being read: where the handle is, and what it is.
struct Reader {
    file: BufReader<File>,
    id: FileId,
    /// Offset of the next byte the handle returns.
    offset: u64,
}

/// A batch handed to the trail whose commit is not confirmed yet.
struct InFlight {
    committing: Committing,
    /// Where the file is sealed up to once it is committed.
    end: Option<Position>,
    lines: u64,
    stats: IngestStats,
}

/// What a prepared batch will be, once sent.
struct InFlightParts {
    end: Option<Position>,
    lines: u64,
    stats: IngestStats,
}

/// Seals the lines of one log file as they are written. See the module
/// docs for rotation and restart.
pub struct Follower {
    trail: Trail,
    path: PathBuf,
    source: String,
    parser: LineParser,
    committed: Option<Position>,
    reader: Option<Reader>,
    /// The line being read (at most `MAX_LINE_LEN` bytes kept).
    line: Vec<u8>,
    /// Its full length so far.
    line_len: usize,
    stats: IngestStats,
    /// Counts of the lines read but not yet committed.
    pending: IngestStats,
    batch_lines: usize,
    /// Batches handed to the trail and not yet known to be committed,
    /// oldest first: the one committing and the one sealed meanwhile.
    in_flight: std::collections::VecDeque<InFlight>,
    /// Links the batches of this follower: the trail appends a batch only
    /// if the one before it committed.
    chain: BatchChain,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("path", &self.path)
            .field("source", &self.source)
            .field("position", &self.committed)
            .finish_non_exhaustive()
    }
}

impl Follower {
    /// A follower of the file at `path`, sealing into `trail`, which must
    /// write to `store` (the store the read position is recovered from).
    pub fn builder(
        trail: Trail,
        store: Arc<dyn Store>,
        path: impl Into<PathBuf>,
        format: LogFormat,
    ) -> FollowerBuilder {
        FollowerBuilder {
            trail,
            store,
            path: path.into(),
            format,
            options: ParseOptions::default(),
            source: None,
            batch_lines: DEFAULT_BATCH_LINES,
        }
    }

    /// How far the file is sealed (committed).
    pub fn position(&self) -> Option<Position> {
        self.committed
    }

    /// What was read and sealed since start.
    pub fn stats(&self) -> IngestStats {
        self.stats
    }

    /// The source name entries carry as `log_source`.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Seals every complete line that can be read now, following rotation;
    /// returns the number of lines sealed. A missing file is not an error
    /// (it may be between rotation and creation): nothing is read.
    pub async fn poll(&mut self) -> Result<u64, IngestError> {
        let result = self.poll_inner().await;
        if result.is_err() {
            // Batches still in flight that commit count; after one that
            // failed, none of its chain can.
            while !self.in_flight.is_empty() {
                if self.settle().await.is_err() {
                    break;
                }
            }
            self.in_flight.clear();
            self.chain = BatchChain::default();
            // Whatever was read past the committed position is read again.
            self.reader = None;
            self.line.clear();
            self.line_len = 0;
            self.pending = IngestStats::default();
        }
        result
    }

    /// Polls every `interval` until `stop` completes, then returns.
    pub async fn follow(
        &mut self,
        interval: TimeDelta,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), IngestError> {
        tokio::pin!(stop);
        let interval = timer_interval(interval, Duration::from_millis(1));
        loop {
            self.poll().await?;
            tokio::select! {
                () = &mut stop => return Ok(()),
                () = tokio::time::sleep(interval) => {}
            }
        }
    }

    async fn poll_inner(&mut self) -> Result<u64, IngestError> {
        let mut sealed = 0;
        loop {
            if self.reader.is_none() && !self.open()? {
                return Ok(sealed);
            }
            sealed += self.drain().await?;
            match self.path_id()? {
                Some((id, len)) if Some(id) == self.reader.as_ref().map(|r| r.id) => {
                    let truncated = self.reader.as_ref().is_some_and(|r| len < r.offset);
                    if truncated {
                        // copytruncate: the same file starts over.
                        self.line.clear();
                        self.line_len = 0;
                        self.committed = Some(Position {
                            file: id,
                            offset: 0,
                        });
                        self.reader = None;
                        continue;
                    }
                    return Ok(sealed);
                }
                Some((id, _)) => {
                    // Rotated: the old file is read to its end; its last
                    // line counts even without a line break.
                    sealed += self.seal_partial_line().await?;
                    self.reader = None;
                    self.committed = Some(Position {
                        file: id,
                        offset: 0,
                    });
                }
                None => return Ok(sealed),
            }
        }
    }

    fn io_error(&self, source: std::io::Error) -> IngestError {
        IngestError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// The identity and length of the file the path names now.
    fn path_id(&self) -> Result<Option<(FileId, u64)>, IngestError> {
        match std::fs::metadata(&self.path) {
            Ok(metadata) => Ok(Some((FileId::of(&metadata), metadata.len()))),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(self.io_error(err)),
        }
    }

    /// Opens the file to continue from: the committed one (found under the
    /// path, or rotated next to it), else the path from its start.
    fn open(&mut self) -> Result<bool, IngestError> {
        let Some((id, len)) = self.path_id()? else {
            return Ok(false);
        };
        let (path, offset) = match self.committed {
            Some(position) if position.file == id => (
                self.path.clone(),
                if len < position.offset {
                    0
                } else {
                    position.offset
                },
            ),
            Some(position) => match self.find_rotated(position.file) {
                Some(rotated) => (rotated, position.offset),
                None => (self.path.clone(), 0),
            },
            None => (self.path.clone(), 0),
        };
        let file = File::open(&path).map_err(|err| self.io_error(err))?;
        let metadata = file.metadata().map_err(|err| self.io_error(err))?;
        let id = FileId::of(&metadata);
        let offset = if metadata.len() < offset { 0 } else { offset };
        let mut file = BufReader::with_capacity(256 * 1024, file);
        file.seek(SeekFrom::Start(offset))
            .map_err(|err| self.io_error(err))?;
        self.reader = Some(Reader { file, id, offset });
        self.committed = Some(Position { file: id, offset });
        Ok(true)
    }

    /// A file with identity `id` next to the path (`access.log.1`).
    fn find_rotated(&self, id: FileId) -> Option<PathBuf> {
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .find(|entry| {
                entry
                    .metadata()
                    .is_ok_and(|metadata| metadata.is_file() && FileId::of(&metadata) == id)
            })
            .map(|entry| entry.path())
    }

    /// Reads and seals complete lines until the end of the file. The next
    /// batch is read, parsed and prepared while the previous one commits,
    /// and handed to the trail before that commit is done, so that the
    /// trail seals it meanwhile. Both are in one chain: a failed batch is
    /// never followed by a committed later one. On an error, [`Self::poll`]
    /// settles what is still in flight.
    async fn drain(&mut self) -> Result<u64, IngestError> {
        let mut sealed = 0;
        loop {
            let mut events = Vec::with_capacity(self.batch_lines);
            let at_end = self.read_lines(&mut events)?;
            if !events.is_empty() {
                let prepared = self.prepare(&events)?;
                self.send(prepared).await?;
            }
            if self.in_flight.len() > 1 {
                sealed += self.settle().await?;
            }
            if at_end {
                while !self.in_flight.is_empty() {
                    sealed += self.settle().await?;
                }
                return Ok(sealed);
            }
        }
    }

    /// Reads up to a batch of complete lines; true at the end of the file.
    fn read_lines(&mut self, events: &mut Vec<(Event, u64)>) -> Result<bool, IngestError> {
        while events.len() < self.batch_lines {
            let Some(reader) = self.reader.as_mut() else {
                return Ok(true);
            };
            let available = match reader.file.fill_buf() {
                Ok(available) => available,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    return Err(IngestError::Io {
                        path: self.path.display().to_string(),
                        source: err,
                    });
                }
            };
            if available.is_empty() {
                return Ok(true);
            }
            let newline = available.iter().position(|&b| b == b'\n');
            let take = newline.map_or(available.len(), |i| i + 1);
            let content = &available[..newline.unwrap_or(take)];
            let room = MAX_LINE_LEN.saturating_sub(self.line.len());
            self.line
                .extend_from_slice(&content[..content.len().min(room)]);
            self.line_len += content.len();
            reader.file.consume(take);
            reader.offset += take as u64;
            if newline.is_some() {
                let (id, offset) = (reader.id, reader.offset);
                let event = self.parser_event(self.line_len, id, offset, 1);
                events.push(event);
            }
        }
        Ok(false)
    }

    /// The event of the line in `self.line`, tagged with its position, and
    /// the line buffer emptied for the next one.
    fn parser_event(
        &mut self,
        len: usize,
        file: FileId,
        end: u64,
        terminator: u64,
    ) -> (Event, u64) {
        let parsed = self.parser.parse_cut(&self.line, len);
        self.stats_pending(&parsed, len as u64 + terminator);
        let mut event = parsed.event;
        event
            .metadata
            .insert("log_source".into(), Value::String(self.source.clone()));
        event
            .metadata
            .insert("log_file".into(), Value::String(file.to_string()));
        event.metadata.insert("log_offset".into(), Value::from(end));
        self.line.clear();
        self.line_len = 0;
        (event, end)
    }

    fn stats_pending(&mut self, parsed: &super::ParsedLine, bytes: u64) {
        self.pending.count(parsed, bytes);
        if self.line_len > MAX_LINE_LEN {
            self.pending.oversized += 1;
        }
    }

    /// Validates the batch's events and computes their commitments; takes
    /// the batch's counts and the position it ends at.
    fn prepare(
        &mut self,
        events: &[(Event, u64)],
    ) -> Result<(PreparedBatch, InFlightParts), IngestError> {
        let prepared = PreparedBatch::of(events.iter().map(|(event, _)| event))
            .map_err(|source| self.record_error(source))?;
        let file = self.reader.as_ref().map(|reader| reader.id);
        let end = events.last().map(|(_, end)| *end);
        let parts = InFlightParts {
            end: file
                .zip(end)
                .map(|(file, offset)| Position { file, offset }),
            lines: events.len() as u64,
            stats: std::mem::take(&mut self.pending),
        };
        Ok((prepared, parts))
    }

    async fn send(
        &mut self,
        (batch, parts): (PreparedBatch, InFlightParts),
    ) -> Result<(), IngestError> {
        let committing = self
            .trail
            .send_batch(batch, Some(&self.chain))
            .await
            .map_err(|source| self.record_error(source))?;
        self.in_flight.push_back(InFlight {
            committing,
            end: parts.end,
            lines: parts.lines,
            stats: parts.stats,
        });
        Ok(())
    }

    /// Waits for the oldest batch in flight; the position and counts
    /// advance only when it is committed.
    async fn settle(&mut self) -> Result<u64, IngestError> {
        let Some(in_flight) = self.in_flight.pop_front() else {
            return Ok(0);
        };
        in_flight
            .committing
            .receipts()
            .await
            .map_err(|source| self.record_error(source))?;
        self.stats.merge(&in_flight.stats);
        if let Some(end) = in_flight.end {
            self.committed = Some(end);
        }
        Ok(in_flight.lines)
    }

    fn record_error(&self, source: crate::Error) -> IngestError {
        IngestError::Record {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Seals a last line without a line break (the file was rotated away).
    async fn seal_partial_line(&mut self) -> Result<u64, IngestError> {
        let Some(reader) = self.reader.as_ref() else {
            return Ok(0);
        };
        if self.line_len == 0 {
            return Ok(0);
        }
        let (id, offset) = (reader.id, reader.offset);
        let event = self.parser_event(self.line_len, id, offset, 0);
        let prepared = self.prepare(&[event])?;
        self.send(prepared).await?;
        self.settle().await
    }
}
