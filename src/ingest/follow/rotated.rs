//! The files a log is rotated into, in age order, and reading any of them
//! (compressed or not) from an offset of its content.

use std::cmp::Reverse;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use flate2::read::MultiGzDecoder;

use super::identity::{FINGERPRINT_LEN, FileId, Fingerprint, Head};

/// A file next to the log that logrotate made of it: `access.log.1`,
/// `access.log.2.gz`, `access.log-20261207`, `access.log-20261207.gz`.
pub(super) struct Rotated {
    pub(super) path: PathBuf,
    pub(super) id: FileId,
    pub(super) compressed: bool,
    /// Its length on disk (compressed length for a compressed file).
    pub(super) len: u64,
    /// When it was created, where the file system tells.
    pub(super) created: Option<SystemTime>,
    /// When it was last written (kept by logrotate when it compresses).
    pub(super) modified: Option<SystemTime>,
    /// Its place in the order of rotation; `None` for the log itself.
    pub(super) age: Option<Age>,
}

/// Where a rotated file stands in the order of rotation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Age {
    /// `name.N`: the higher N, the older.
    Numbered(Reverse<u64>),
    /// `name-DATE` (`dateext`): the later the date, the newer.
    Dated(String),
}

/// What the name of a file next to the log says about it, if it is one of
/// the log's rotated files.
fn age_of(log_name: &str, name: &str) -> Option<(Age, bool)> {
    let suffix = name.strip_prefix(log_name)?;
    let (suffix, compressed) = match suffix.strip_suffix(".gz") {
        Some(rest) => (rest, true),
        None => (suffix, false),
    };
    if let Some(number) = suffix.strip_prefix('.')
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
    {
        return Some((Age::Numbered(Reverse(number.parse().ok()?)), compressed));
    }
    // dateext: a separator, then digits and the separators of a date format.
    let mut chars = suffix.chars();
    let separator = chars.next()?;
    let date = chars.as_str();
    ((separator == '-' || separator == '.' || separator == '_')
        && date.bytes().any(|b| b.is_ascii_digit())
        && date
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')))
    .then(|| (Age::Dated(date.to_owned()), compressed))
}

/// The rotated files of the log at `path`, oldest first; a file and its
/// compressed copy (while logrotate compresses) the plain one first.
pub(super) fn rotated_files(path: &Path) -> std::io::Result<Vec<Rotated>> {
    let Some(log_name) = path.file_name().and_then(|name| name.to_str()) else {
        return Ok(Vec::new());
    };
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some((age, compressed)) = name.to_str().and_then(|name| age_of(log_name, name)) else {
            continue;
        };
        // A file removed meanwhile (logrotate deleting the uncompressed
        // copy) is simply not a candidate.
        let Ok(metadata) = std::fs::metadata(entry.path()) else {
            continue;
        };
        if !metadata.is_file() {
            continue;
        }
        found.push(Rotated {
            path: entry.path(),
            id: FileId::of(&metadata),
            compressed,
            len: metadata.len(),
            created: metadata.created().ok(),
            modified: metadata.modified().ok(),
            age: Some(age),
        });
    }
    found.sort_by(|a, b| (&a.age, a.compressed).cmp(&(&b.age, b.compressed)));
    Ok(found)
}

impl Rotated {
    /// Whether this rotated file is a copy of the log file `log` (made by
    /// `copytruncate`) rather than a former log file renamed: a copy is
    /// younger than the log it copies, a renamed file older than the log
    /// created after it. `None` where that cannot be told: the file system
    /// does not record creation times, or the file is compressed (as young
    /// as its compression, whatever it was before).
    pub(super) fn is_copy_of(&self, log: &Rotated) -> Option<bool> {
        if self.compressed {
            return None;
        }
        Some(self.created? > log.created?)
    }

    /// Whether `log`, which has the inode of the file this one was made
    /// of, is a new file that reused the inode once that file was deleted:
    /// it is younger than this file's content (a compressed file keeps the
    /// time its content was last written).
    pub(super) fn inode_reused_by(&self, log: &Rotated) -> bool {
        let made = if self.compressed {
            self.modified
        } else {
            self.created
        };
        made.zip(log.created)
            .is_some_and(|(made, log_created)| log_created > made)
    }
}

/// Opens a file's content: decompressed for a compressed one.
fn content(path: &Path, compressed: bool) -> std::io::Result<(Box<dyn Read + Send>, FileId)> {
    let file = File::open(path)?;
    let id = FileId::of(&file.metadata()?);
    let content: Box<dyn Read + Send> = if compressed {
        Box::new(MultiGzDecoder::new(BufReader::new(file)))
    } else {
        Box::new(file)
    };
    Ok((content, id))
}

/// Reads up to `len` bytes, fewer only at the end of the content.
fn read_up_to(content: &mut dyn Read, len: usize) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(len);
    content.take(len as u64).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Whether the content of the file at `path` starts as fingerprinted and,
/// for a compressed file, holds at least `len` bytes (a plain file's
/// length is on disk, for the caller to compare).
pub(super) fn starts_as(
    path: &Path,
    compressed: bool,
    fingerprint: &Fingerprint,
    len: u64,
) -> std::io::Result<bool> {
    let (mut content, _) = content(path, compressed)?;
    let head_len = usize::try_from(fingerprint.len).unwrap_or(FINGERPRINT_LEN);
    let head = read_up_to(&mut content, head_len)?;
    if !fingerprint.matches(&head) {
        return Ok(false);
    }
    if !compressed {
        // Its length is on disk: the caller compared it.
        return Ok(true);
    }
    // A compressed file's length is only known by decompressing it.
    let rest = len.saturating_sub(head.len() as u64);
    Ok(std::io::copy(&mut content.take(rest), &mut std::io::sink())? == rest)
}

/// An open file being read: where the handle is, and what it is.
pub(super) struct Reader {
    pub(super) input: BufReader<Box<dyn Read + Send>>,
    pub(super) id: FileId,
    /// Offset in the content of the next byte the handle returns.
    pub(super) offset: u64,
    /// The content's first bytes, for the fingerprint of each position.
    pub(super) head: Head,
    /// Read from the log's path, not from a rotated file: the file the
    /// writer appends to, until the path names another.
    pub(super) live: bool,
}

impl Reader {
    /// Opens the file at `path` at `offset` of its content. Fails with
    /// `UnexpectedEof` when the content is shorter than `offset`.
    pub(super) fn open(
        path: &Path,
        compressed: bool,
        offset: u64,
        live: bool,
    ) -> std::io::Result<Self> {
        let head_len = usize::try_from(offset).map_or(FINGERPRINT_LEN, |o| o.min(FINGERPRINT_LEN));
        let short = || std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        let (content, head, id): (Box<dyn Read + Send>, _, _) = if compressed {
            // No seeking in compressed content: read up to the offset.
            let (mut content, id) = content(path, true)?;
            let head = read_up_to(&mut content, head_len)?;
            let skip = offset - head.len() as u64;
            let skipped = std::io::copy(&mut (&mut content).take(skip), &mut std::io::sink())?;
            if head.len() < head_len || skipped < skip {
                return Err(short());
            }
            (content, head, id)
        } else {
            let mut file = File::open(path)?;
            let metadata = file.metadata()?;
            if metadata.len() < offset {
                return Err(short());
            }
            let head = read_up_to(&mut file, head_len)?;
            file.seek(SeekFrom::Start(offset))?;
            (Box::new(file), head, FileId::of(&metadata))
        };
        Ok(Self {
            input: BufReader::with_capacity(256 * 1024, content),
            id,
            offset,
            head: Head::new(head),
            live,
        })
    }

    /// Whether the file at `path` still starts with the bytes this reader
    /// read from its start: false once it was truncated and written anew,
    /// even past the old read position.
    pub(super) fn same_start(&self, path: &Path) -> std::io::Result<bool> {
        let (mut content, _) = content(path, false)?;
        let head = self.head.bytes();
        Ok(read_up_to(&mut content, head.len())? == head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(compressed: bool, created: u64, modified: u64) -> Rotated {
        let at = |secs| Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs));
        Rotated {
            path: PathBuf::from("access.log.1"),
            id: FileId {
                device: 1,
                inode: 2,
            },
            compressed,
            len: 0,
            created: at(created),
            modified: at(modified),
            age: None,
        }
    }

    #[test]
    fn a_copy_is_younger_than_the_log_a_renamed_file_older() {
        let log = file(false, 100, 500);
        // copytruncate: copied at 400 from a log created at 100.
        assert_eq!(file(false, 400, 400).is_copy_of(&log), Some(true));
        // rename: the old log, created at 10, written until 450.
        assert_eq!(file(false, 10, 450).is_copy_of(&log), Some(false));
        // Compressed: its creation is its compression, which tells nothing.
        assert_eq!(file(true, 400, 90).is_copy_of(&log), None);
        let unknown = Rotated {
            created: None,
            ..file(false, 0, 0)
        };
        assert_eq!(unknown.is_copy_of(&log), None);
    }

    #[test]
    fn a_log_younger_than_the_compressed_content_reused_its_inode() {
        // The old log's content, last written at 90, compressed at 120; the
        // new log created at 100 got the old inode.
        let new_log = file(false, 100, 130);
        assert!(file(true, 120, 90).inode_reused_by(&new_log));
        // copytruncate: the log, created at 10, outlives its copy.
        let old_log = file(false, 10, 130);
        assert!(!file(true, 120, 90).inode_reused_by(&old_log));
        assert!(!file(false, 120, 120).inode_reused_by(&old_log));
    }

    #[test]
    fn rotated_names_are_ordered_by_age() {
        let numbered = |n| Some((Age::Numbered(Reverse(n)), false));
        assert_eq!(age_of("access.log", "access.log.1"), numbered(1));
        assert_eq!(
            age_of("access.log", "access.log.12.gz"),
            Some((Age::Numbered(Reverse(12)), true))
        );
        assert_eq!(
            age_of("access.log", "access.log-20261207"),
            Some((Age::Dated("20261207".into()), false))
        );
        assert_eq!(age_of("access.log", "access.log"), None);
        assert_eq!(age_of("access.log", "access.log.bak"), None);
        assert_eq!(age_of("access.log", "access.log.old.gz"), None);
        assert_eq!(age_of("access.log", "error.log.1"), None);
        assert!(numbered(2) < numbered(1));
        assert!(
            Age::Dated("20261206".into()) < Age::Dated("20261207".into()),
            "older dates first"
        );
    }
}
