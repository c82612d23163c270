//! What a log file is, whatever it is called: its device and inode, and a
//! fingerprint of its first bytes, which survives copying and compression
//! and tells a file from a new one that reuses its inode.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// How many bytes of a file's start its fingerprint covers at most.
pub const FINGERPRINT_LEN: usize = 1024;

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
    pub(super) fn of(metadata: &std::fs::Metadata) -> Self {
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
            // follower then relies on the fingerprint alone.
            let _ = metadata;
            Self {
                device: 0,
                inode: 0,
            }
        }
    }

    pub(super) fn parse(text: &str) -> Option<Self> {
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

/// SHA-256 of a file's first `len` bytes (at most [`FINGERPRINT_LEN`]):
/// the same for a copy or the decompressed content of a compressed copy,
/// different for a new file that got the old one's inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Fingerprint {
    /// How many bytes it covers.
    pub len: u64,
    /// Their SHA-256.
    pub sha256: [u8; 32],
}

impl Fingerprint {
    /// The fingerprint of `head`, a file's first bytes.
    pub fn of(head: &[u8]) -> Self {
        Self {
            len: head.len() as u64,
            sha256: Sha256::digest(head).into(),
        }
    }

    /// Whether `head`, the first bytes of a file (at least `self.len` of
    /// them when the file has that many), starts as the fingerprinted one.
    pub(super) fn matches(&self, head: &[u8]) -> bool {
        usize::try_from(self.len)
            .ok()
            .and_then(|len| head.get(..len))
            .is_some_and(|start| Self::of(start) == *self)
    }

    pub(super) fn parse(hex_text: &str, len: u64) -> Option<Self> {
        let mut sha256 = [0; 32];
        hex::decode_to_slice(hex_text, &mut sha256).ok()?;
        (len <= FINGERPRINT_LEN as u64).then_some(Self { len, sha256 })
    }

    pub(super) fn hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// The first bytes of the file being read, gathered as it is read, so
/// that each line's position carries the fingerprint of what is sealed.
#[derive(Default)]
pub(super) struct Head {
    bytes: Vec<u8>,
    /// The fingerprint once `bytes` is full: computed once.
    full: Option<Fingerprint>,
}

impl Head {
    pub(super) fn new(bytes: Vec<u8>) -> Self {
        let mut head = Self::default();
        head.extend(&bytes);
        head
    }

    /// Takes what still fits of the bytes read next.
    pub(super) fn extend(&mut self, read: &[u8]) {
        let room = FINGERPRINT_LEN.saturating_sub(self.bytes.len());
        if room == 0 {
            return;
        }
        self.bytes.extend_from_slice(&read[..read.len().min(room)]);
        if self.bytes.len() == FINGERPRINT_LEN {
            self.full = Some(Fingerprint::of(&self.bytes));
        }
    }

    /// The fingerprint of the file's start up to `end`.
    pub(super) fn fingerprint(&self, end: u64) -> Fingerprint {
        if let Some(full) = self.full {
            return full;
        }
        let len = usize::try_from(end).map_or(self.bytes.len(), |end| end.min(self.bytes.len()));
        Fingerprint::of(&self.bytes[..len])
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The path with symlinks, `.` and `..` resolved, so that one file has one
/// name however it is given. A file that does not exist yet (between
/// rotation and creation) is resolved through its folder.
pub(super) fn canonical(path: &Path) -> PathBuf {
    if let Ok(resolved) = std::fs::canonicalize(path) {
        return resolved;
    }
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    match (std::fs::canonicalize(folder), path.file_name()) {
        (Ok(folder), Some(name)) => folder.join(name),
        _ => path.to_path_buf(),
    }
}
