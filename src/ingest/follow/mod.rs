//! Following a log file that is still being written, like `tail -F`.
//!
//! Every entry sealed from a file carries where it came from in its
//! metadata: `log_source` (the follower's source name), `log_file` (the
//! file's identity, `device:inode`), `log_offset` (the byte offset just
//! after its line) and `log_fingerprint` / `log_fingerprint_len` (SHA-256
//! of the file's first bytes, up to [`FINGERPRINT_LEN`]). A batch of lines
//! is committed with [`Trail::record_batch`], all or nothing, so the newest
//! entry of a source in the trail always states exactly how far the file
//! was sealed: on start the follower reads it back and resumes there — no
//! line lost, none sealed twice, however the previous run ended.
//!
//! Rotation: the file last sealed is looked for under the path and among
//! its rotated files (`name.1`, `name.2.gz`, `name-20261207` …), by
//! identity and fingerprint, or by fingerprint alone for a copy or a
//! compressed file (whose fingerprint is that of its decompressed start).
//! It is read to its end, then every newer rotated file, oldest first,
//! then the file under the path. A file that keeps its identity but no
//! longer starts with the bytes sealed was truncated (`copytruncate`),
//! also when it has grown past the old position meanwhile: the copy is
//! finished first. Where lines cannot be recovered — written between the
//! copy and the truncation, or in a file that cannot be found any more —
//! a [`GAP_ACTION`](super::GAP_ACTION) entry is sealed instead.
//!
//! A last line without a line break is sealed once its file is rotated
//! away, or once no byte was added to it for the quiet period
//! ([`FollowerBuilder::partial_line_after`]), with `line_break: false`;
//! bytes appended to it later start a new line.
//!
//! Memory is bounded: three batches of events (one being read, one being
//! sealed, one being committed), one line of at most
//! [`MAX_LINE_LEN`](super::MAX_LINE_LEN) bytes (longer lines are sealed cut
//! short), and the parser's bounded state.

mod identity;
mod rotated;

use std::borrow::Cow;
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value};

pub use identity::{FINGERPRINT_LEN, FileId, Fingerprint};
use rotated::{Reader, Rotated, rotated_files, starts_as};

use super::fields::ParseOptions;
use super::line::LineParser;
use super::{GAP_ACTION, IngestError, IngestStats, LogFormat, MAX_LINE_LEN};
use crate::event::{Actor, Context, Event, Outcome};
use crate::model::{EntryKind, timer_interval};
use crate::store::{Query, Store};
use crate::write::{BatchChain, Committing, PreparedBatch, Trail};

/// Default number of lines committed per batch: as many rows as the SQLite
/// store inserts with one statement, so that a full batch is one statement
/// (1,000 lines took six).
const DEFAULT_BATCH_LINES: usize = 1024;

/// Default quiet period after which a last line without a line break is
/// sealed: long beside the gap between two writes of one line, short
/// beside the time an operator waits for an entry.
const DEFAULT_PARTIAL_LINE_AFTER: TimeDelta = TimeDelta::minutes(1);

/// How far a file has been sealed: its identity and the offset of the
/// first byte not yet sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Position {
    /// The file.
    pub file: FileId,
    /// The offset just after the last sealed line (in the decompressed
    /// content, for a compressed file).
    pub offset: u64,
    /// The fingerprint of the file's first bytes, up to `offset`; `None`
    /// for a position recorded before fingerprints were.
    pub fingerprint: Option<Fingerprint>,
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
    partial_line_after: TimeDelta,
}

impl FollowerBuilder {
    /// The name this source's entries carry as `log_source` (default: the
    /// path with symlinks and `..` resolved, so that one file has one
    /// source however it is named). Keep it stable across restarts and
    /// distinct per file.
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

    /// How long a last line without a line break must stay unchanged, by
    /// the trail's clock, before it is sealed as it is (default one
    /// minute). Bytes appended to it afterwards start a new line.
    pub fn partial_line_after(mut self, quiet: TimeDelta) -> Self {
        self.partial_line_after = quiet.max(TimeDelta::zero());
        self
    }

    /// Recovers the read position from the trail and returns the follower.
    /// Finding it reads the trail's entries newest first until one of this
    /// source turns up: quick for a source that was sealed before, a scan
    /// of the whole trail for a new one.
    pub async fn start(self) -> Result<Follower, IngestError> {
        let path = identity::canonical(&self.path);
        let as_given = self.path.to_string_lossy().into_owned();
        let (source, names) = match self.source {
            Some(source) => (source.clone(), vec![source]),
            None => {
                let canonical = path.to_string_lossy().into_owned();
                // Entries sealed before paths were resolved name the path
                // as it was given: they still tell the position.
                (canonical.clone(), vec![canonical, as_given])
            }
        };
        let position = recover(&*self.store, self.trail.name(), &names)
            .await
            .map_err(|source_err| IngestError::Recover {
                path: path.display().to_string(),
                trail: self.trail.name().to_owned(),
                source: source_err,
            })?;
        Ok(Follower {
            trail: self.trail,
            path,
            source,
            parser: LineParser::new(self.format, self.options),
            committed: position,
            finished: false,
            reader: None,
            line: Vec::new(),
            line_len: 0,
            partial_seen: None,
            partial_line_after: self.partial_line_after,
            stats: IngestStats::default(),
            pending: IngestStats::default(),
            batch_lines: self.batch_lines,
            in_flight: std::collections::VecDeque::new(),
            chain: BatchChain::default(),
        })
    }
}

/// The newest position recorded in `trail` by a source named one of
/// `names`.
async fn recover(
    store: &dyn Store,
    trail: &str,
    names: &[String],
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
            let source = metadata.get("log_source").and_then(Value::as_str);
            if !names.iter().any(|name| Some(name.as_str()) == source) {
                continue;
            }
            let file = metadata
                .get("log_file")
                .and_then(Value::as_str)
                .and_then(FileId::parse);
            let offset = metadata.get("log_offset").and_then(Value::as_u64);
            let fingerprint = metadata
                .get("log_fingerprint")
                .and_then(Value::as_str)
                .zip(metadata.get("log_fingerprint_len").and_then(Value::as_u64))
                .and_then(|(hex, len)| Fingerprint::parse(hex, len));
            if let (Some(file), Some(offset)) = (file, offset) {
                return Ok(Some(Position {
                    file,
                    offset,
                    fingerprint,
                }));
            }
        }
        match page.next {
            Some(cursor) => query = query.after(cursor),
            None => return Ok(None),
        }
    }
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

/// Lines that cannot be sealed: what the gap entry says.
struct Gap {
    /// The file the lines were in.
    file: FileId,
    /// The offset from which they are missing.
    from: u64,
    reason: &'static str,
}

/// What to read next.
enum Next {
    /// Nothing to read now: the path names no file.
    Wait,
    /// Read the file at `path` from `offset` of its content, after sealing
    /// the gap, if any.
    Read {
        path: PathBuf,
        compressed: bool,
        offset: u64,
        live: bool,
        gap: Option<Gap>,
    },
}

/// Seals the lines of one log file as they are written. See the module
/// docs for rotation and restart.
pub struct Follower {
    trail: Trail,
    /// The log's path, symlinks and `..` resolved.
    path: PathBuf,
    source: String,
    parser: LineParser,
    committed: Option<Position>,
    /// The committed file was read to its end after being rotated away:
    /// what follows is the next newer file.
    finished: bool,
    reader: Option<Reader>,
    /// The line being read (at most `MAX_LINE_LEN` bytes kept).
    line: Vec<u8>,
    /// Its full length so far.
    line_len: usize,
    /// A last line without a line break: its length when last seen and
    /// since when it has had that length.
    partial_seen: Option<(usize, DateTime<Utc>)>,
    partial_line_after: TimeDelta,
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
            partial_line_after: DEFAULT_PARTIAL_LINE_AFTER,
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
            self.finished = false;
            self.clear_line();
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
            if self.reader.is_none() {
                match self.next()? {
                    Next::Wait => return Ok(sealed),
                    Next::Read {
                        path,
                        compressed,
                        offset,
                        live,
                        gap,
                    } => {
                        let reader = Reader::open(&path, compressed, offset, live)
                            .map_err(|err| self.io_error(err))?;
                        if let Some(gap) = gap {
                            let resume = Position {
                                file: reader.id,
                                offset,
                                fingerprint: Some(reader.head.fingerprint(offset)),
                            };
                            self.seal_gap(&gap, resume).await?;
                        }
                        self.committed = Some(Position {
                            file: reader.id,
                            offset,
                            fingerprint: Some(reader.head.fingerprint(offset)),
                        });
                        self.finished = false;
                        self.reader = Some(reader);
                    }
                }
            }
            // Checked before reading on: a file truncated and written anew
            // past the old position must not be read from the middle.
            if self.truncated()? {
                // copytruncate: what the copy holds beyond the committed
                // position is read from the copy.
                self.reader = None;
                self.clear_line();
                continue;
            }
            sealed += self.drain().await?;
            let current = self.path_id()?;
            let Some(reader) = self.reader.as_ref() else {
                continue;
            };
            match current {
                Some((id, _)) if reader.live && id == reader.id => {
                    sealed += self.seal_quiet_partial_line().await?;
                    return Ok(sealed);
                }
                // The writer may still append to the file it has open
                // until it writes to the new one: wait for that, unless a
                // newer rotated file shows it has moved on.
                None | Some((_, 0)) if !self.newer_than_reader()? => {
                    sealed += self.seal_quiet_partial_line().await?;
                    return Ok(sealed);
                }
                _ => {
                    // Rotated away and read to its end: its last line
                    // counts even without a line break.
                    sealed += self.seal_partial_line().await?;
                    self.reader = None;
                    self.finished = true;
                }
            }
        }
    }

    /// Whether the file being read under the path was truncated: it is
    /// shorter than the read position, or no longer starts with the bytes
    /// read from it.
    fn truncated(&self) -> Result<bool, IngestError> {
        let Some(reader) = self.reader.as_ref().filter(|reader| reader.live) else {
            return Ok(false);
        };
        match self.path_id()? {
            Some((id, len)) if id == reader.id => Ok(len < reader.offset
                || !reader
                    .same_start(&self.path)
                    .map_err(|err| self.io_error(err))?),
            _ => Ok(false),
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
        Ok(self.path_file()?.map(|file| (file.id, file.len)))
    }

    /// The file the path names now.
    fn path_file(&self) -> Result<Option<Rotated>, IngestError> {
        match std::fs::metadata(&self.path) {
            Ok(metadata) => Ok(Some(Rotated {
                path: self.path.clone(),
                id: FileId::of(&metadata),
                compressed: false,
                len: metadata.len(),
                created: metadata.created().ok(),
                modified: metadata.modified().ok(),
                age: None,
            })),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(self.io_error(err)),
        }
    }

    /// Whether `file` is the committed file: its content starts with the
    /// bytes sealed and is at least as long.
    fn is_committed(&self, file: &Rotated, by_identity: bool) -> Result<bool, IngestError> {
        match self.committed {
            Some(committed) => self.holds(file, &committed, by_identity),
            None => Ok(false),
        }
    }

    /// Whether `file` is the file of `position`: by identity (and the
    /// fingerprint), or by the fingerprint alone (a copy, a compressed
    /// file), and long enough.
    fn holds(
        &self,
        file: &Rotated,
        position: &Position,
        by_identity: bool,
    ) -> Result<bool, IngestError> {
        if by_identity && (file.compressed || file.id != position.file) {
            return Ok(false);
        }
        if !file.compressed && file.len < position.offset {
            return Ok(false);
        }
        let Some(fingerprint) = position.fingerprint else {
            // A position without fingerprint: identity alone.
            return Ok(by_identity);
        };
        if !by_identity && fingerprint.len == 0 {
            // An empty start matches anything.
            return Ok(false);
        }
        match starts_as(&file.path, file.compressed, &fingerprint, position.offset) {
            Ok(matches) => Ok(matches),
            // A compressed file being written, or one removed meanwhile,
            // is not the one looked for.
            Err(err) if file.compressed || err.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(self.io_error(err)),
        }
    }

    /// Where the file of `position` is among the rotated files: found by
    /// identity first, else by fingerprint.
    fn find(&self, rotated: &[Rotated], position: &Position) -> Result<Option<usize>, IngestError> {
        for by_identity in [true, false] {
            for (i, file) in rotated.iter().enumerate() {
                if self.holds(file, position, by_identity)? {
                    return Ok(Some(i));
                }
            }
        }
        Ok(None)
    }

    /// Whether a rotated file newer than the one being read exists: then
    /// the writer has moved on, even if the file under the path is still
    /// empty.
    fn newer_than_reader(&self) -> Result<bool, IngestError> {
        let Some(reader) = self.reader.as_ref() else {
            return Ok(false);
        };
        let rotated = rotated_files(&self.path).map_err(|err| self.io_error(err))?;
        Ok(self
            .find(&rotated, &reader_position(reader))?
            .is_some_and(|i| {
                rotated[i + 1..]
                    .iter()
                    .any(|newer| newer.age > rotated[i].age)
            }))
    }

    /// Decides which file to read next: the committed one (under the path
    /// or rotated), the one after it once it is finished, and the gap to
    /// seal first where lines cannot be recovered.
    fn next(&self) -> Result<Next, IngestError> {
        let Some(at_path) = self.path_file()? else {
            return Ok(Next::Wait);
        };
        let live = |offset, gap| Next::Read {
            path: self.path.clone(),
            compressed: false,
            offset,
            live: true,
            gap,
        };
        let Some(committed) = self.committed else {
            return Ok(live(0, None));
        };
        if !self.finished && self.is_committed(&at_path, true)? {
            return Ok(live(committed.offset, None));
        }
        let rotated = rotated_files(&self.path).map_err(|err| self.io_error(err))?;
        let found = self.find(&rotated, &committed)?;
        // The path keeps the committed file's identity but not its start:
        // truncated (copytruncate), with the lines written between the
        // copy and the truncation lost.
        let truncated = !self.finished && at_path.id == committed.file;
        let gap = |reason| Gap {
            file: committed.file,
            from: committed.offset,
            reason,
        };
        Ok(match found {
            Some(i) if self.finished => {
                // After a copy, what the log got between the copy and its
                // truncation is lost: the gap of the log's former content
                // from the copy's end on.
                let copy = rotated[i].is_copy_of(&at_path) == Some(true);
                let gap = copy.then_some(Gap {
                    file: at_path.id,
                    from: committed.offset,
                    reason: "copytruncate",
                });
                // The next older file, skipping the compressed copy of the
                // file just read (while logrotate compresses, both exist).
                match rotated[i + 1..]
                    .iter()
                    .find(|newer| newer.age > rotated[i].age)
                {
                    Some(newer) => Next::Read {
                        path: newer.path.clone(),
                        compressed: newer.compressed,
                        offset: 0,
                        live: false,
                        gap,
                    },
                    None => live(0, gap),
                }
            }
            Some(i) => {
                // A copy that cannot be told by its age (compressed, or no
                // creation times) gets its gap now, while the truncated
                // log shows what it is — unless the log is a new file that
                // reused the inode of the file compressed.
                let file = &rotated[i];
                let now = truncated
                    && file.is_copy_of(&at_path).is_none()
                    && !file.inode_reused_by(&at_path);
                Next::Read {
                    path: file.path.clone(),
                    compressed: file.compressed,
                    offset: committed.offset,
                    live: false,
                    gap: now.then(|| gap("copytruncate")),
                }
            }
            None if self.finished => live(0, None),
            None if truncated => live(0, Some(gap("copytruncate"))),
            None => live(0, Some(gap("file not found"))),
        })
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
                let prepared = self.prepare(events)?;
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
    fn read_lines(&mut self, events: &mut Vec<(Event, Position)>) -> Result<bool, IngestError> {
        while events.len() < self.batch_lines {
            let Some(reader) = self.reader.as_mut() else {
                return Ok(true);
            };
            let available = match reader.input.fill_buf() {
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
            reader.head.extend(&available[..take]);
            reader.input.consume(take);
            reader.offset += take as u64;
            if newline.is_some() {
                let end = reader_position(reader);
                let event = self.parser_event(self.line_len, end, 1);
                events.push(event);
            }
        }
        Ok(false)
    }

    /// The event of the line in `self.line`, tagged with its position, and
    /// the line buffer emptied for the next one.
    fn parser_event(&mut self, len: usize, end: Position, terminator: u64) -> (Event, Position) {
        let parsed = self.parser.parse_cut(&self.line, len);
        self.stats_pending(&parsed, len as u64 + terminator);
        let mut event = parsed.event;
        self.tag(&mut event, end);
        if terminator == 0 {
            event
                .metadata
                .insert("line_break".into(), Value::Bool(false));
        }
        self.clear_line();
        (event, end)
    }

    /// Records the source and the position in an entry's metadata.
    fn tag(&self, event: &mut Event, end: Position) {
        let metadata = &mut event.metadata;
        metadata.insert("log_source".into(), Value::String(self.source.clone()));
        metadata.insert("log_file".into(), Value::String(end.file.to_string()));
        metadata.insert("log_offset".into(), Value::from(end.offset));
        if let Some(fingerprint) = end.fingerprint {
            metadata.insert("log_fingerprint".into(), Value::String(fingerprint.hex()));
            metadata.insert("log_fingerprint_len".into(), Value::from(fingerprint.len));
        }
    }

    fn clear_line(&mut self) {
        self.line.clear();
        self.line_len = 0;
        self.partial_seen = None;
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
        events: Vec<(Event, Position)>,
    ) -> Result<(PreparedBatch, InFlightParts), IngestError> {
        let prepared = PreparedBatch::of(events.iter().map(|(event, _)| event))
            .map_err(|source| self.record_error(source))?;
        let parts = InFlightParts {
            end: events.last().map(|(_, end)| *end),
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

    /// Seals a last line without a line break (`line_break: false`): its
    /// file was rotated away, or it stayed unchanged for the quiet period.
    async fn seal_partial_line(&mut self) -> Result<u64, IngestError> {
        let Some(reader) = self.reader.as_ref() else {
            return Ok(0);
        };
        if self.line_len == 0 {
            return Ok(0);
        }
        let end = reader_position(reader);
        let event = self.parser_event(self.line_len, end, 0);
        let prepared = self.prepare(vec![event])?;
        self.send(prepared).await?;
        self.settle().await
    }

    /// Seals the last line without a line break once it has not grown for
    /// the quiet period; starts the quiet period when it has.
    async fn seal_quiet_partial_line(&mut self) -> Result<u64, IngestError> {
        if self.line_len == 0 {
            self.partial_seen = None;
            return Ok(0);
        }
        let now = self.trail.clock().now();
        match self.partial_seen {
            Some((len, since)) if len == self.line_len => {
                if now - since >= self.partial_line_after {
                    return self.seal_partial_line().await;
                }
            }
            _ => self.partial_seen = Some((self.line_len, now)),
        }
        Ok(0)
    }

    /// Seals a gap entry: lines of `gap.file` from `gap.from` on cannot be
    /// read any more; reading resumes at `resume`.
    async fn seal_gap(&mut self, gap: &Gap, resume: Position) -> Result<(), IngestError> {
        let mut metadata = Map::new();
        metadata.insert("gap_file".into(), Value::String(gap.file.to_string()));
        metadata.insert("gap_offset".into(), Value::from(gap.from));
        // Neither truncation nor deletion leaves a trace of how much was
        // written before it: the loss is stated, its size cannot be.
        metadata.insert("lost_bytes".into(), Value::String("unknown".into()));
        metadata.insert("reason".into(), Value::String(gap.reason.into()));
        let mut event = Event {
            action: Cow::Borrowed(GAP_ACTION),
            actor: Some(Actor::system("ingest")),
            impersonator: None,
            tenant: None,
            target: None,
            outcome: Outcome::failure(gap.reason),
            context: Context::default(),
            changes: Vec::new(),
            metadata,
            occurred_at: None,
            location: None,
        };
        self.tag(&mut event, resume);
        let prepared = PreparedBatch::of([&event]).map_err(|source| self.record_error(source))?;
        self.send((
            prepared,
            InFlightParts {
                end: Some(resume),
                lines: 0,
                stats: IngestStats::default(),
            },
        ))
        .await?;
        self.settle().await?;
        self.stats.gaps += 1;
        Ok(())
    }
}

/// Where the reader stands: the position after the bytes it has read.
fn reader_position(reader: &Reader) -> Position {
    Position {
        file: reader.id,
        offset: reader.offset,
        fingerprint: Some(reader.head.fingerprint(reader.offset)),
    }
}
