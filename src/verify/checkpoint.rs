//! Checkpoints: small statements of a trail's head, exported off the
//! machine, that turn truncation and rollback into findings.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::model::FormatError;
use crate::model::Head;
use crate::model::{Mac, format_timestamp};

const HEADER: &str = "trailseal checkpoint v1";

/// `(trail, next seq, head MAC, time)`: what a trail looked like when the
/// checkpoint was taken.
///
/// It needs no signature of its own: the head MAC can only have been made
/// with the sealing key, and a verifier holding the verification key checks
/// that the entry at `next_seq - 1` is authentic and has exactly this MAC.
///
/// The text form is line-based and stable:
///
/// ```text
/// trailseal checkpoint v1
/// trail admin
/// next-seq 42
/// head-mac 3c5e…
/// time 2026-11-29T08:00:00.000000Z
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Checkpoint {
    /// The trail.
    pub trail: String,
    /// Number of entries (the seq the next entry gets).
    pub next_seq: u64,
    /// MAC of the entry at `next_seq - 1`.
    pub head_mac: Mac,
    /// When the checkpoint was taken.
    pub time: DateTime<Utc>,
}

impl Checkpoint {
    /// The checkpoint of a trail whose newest entry is `head`.
    pub fn of_head(trail: &str, head: &Head, time: DateTime<Utc>) -> Self {
        Self {
            trail: trail.to_owned(),
            next_seq: head.seq + 1,
            head_mac: head.mac,
            time: crate::model::truncate_to_micros(time),
        }
    }

    /// Parses every checkpoint in a text (several may be concatenated).
    pub fn parse_all(text: &str) -> Result<Vec<Checkpoint>, CheckpointError> {
        let mut checkpoints = Vec::new();
        let mut block = Vec::new();
        for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
            if line == HEADER && !block.is_empty() {
                checkpoints.push(Self::from_lines(&block)?);
                block.clear();
            }
            block.push(line);
        }
        if !block.is_empty() {
            checkpoints.push(Self::from_lines(&block)?);
        }
        Ok(checkpoints)
    }

    fn from_lines(lines: &[&str]) -> Result<Self, CheckpointError> {
        let malformed = |what: &str| CheckpointError::Malformed(what.to_owned());
        let [header, trail, next_seq, head_mac, time] = lines else {
            return Err(malformed(
                "expected exactly the lines trailseal checkpoint v1, trail, next-seq, head-mac and time",
            ));
        };
        if *header != HEADER {
            return Err(malformed("missing the \"trailseal checkpoint v1\" line"));
        }
        let field = |line: &str, name: &str| -> Result<String, CheckpointError> {
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .map(str::to_owned)
                .ok_or_else(|| CheckpointError::Malformed(format!("expected the {name} line")))
        };
        let trail = field(trail, "trail")?;
        crate::model::validate_trail_name(&trail).map_err(|_| malformed("invalid trail name"))?;
        let next_seq_text = field(next_seq, "next-seq")?;
        let next_seq: u64 = next_seq_text
            .parse()
            .ok()
            .filter(|seq: &u64| seq.to_string() == next_seq_text)
            .ok_or_else(|| malformed("next-seq is not a number"))?;
        // Every trail has its genesis: a checkpoint of no entries would
        // vouch for nothing and could only hide a trail.
        if next_seq == 0 {
            return Err(malformed(
                "next-seq is 0: a checkpoint names at least a trail's genesis",
            ));
        }
        let head_mac = Mac::from_hex(&field(head_mac, "head-mac")?)?;
        let time_text = field(time, "time")?;
        let time = DateTime::parse_from_rfc3339(&time_text)
            .ok()
            .map(|time| time.with_timezone(&Utc))
            .filter(|time| format_timestamp(*time) == time_text)
            .ok_or_else(|| {
                malformed(
                    "time is not a UTC time with six fractional digits, as checkpoints write it",
                )
            })?;
        Ok(Self {
            trail,
            next_seq,
            head_mac,
            time,
        })
    }

    /// Reads every checkpoint of a file of at most [`MAX_CHECKPOINT_FILE`]
    /// bytes.
    pub fn read_file(
        path: impl AsRef<std::path::Path>,
    ) -> Result<Vec<Checkpoint>, CheckpointError> {
        use std::io::Read;
        let path = path.as_ref();
        let io =
            |err: std::io::Error| CheckpointError::Malformed(format!("{}: {err}", path.display()));
        let mut text = String::new();
        std::fs::File::open(path)
            .map_err(io)?
            .take(MAX_CHECKPOINT_FILE + 1)
            .read_to_string(&mut text)
            .map_err(io)?;
        if text.len() as u64 > MAX_CHECKPOINT_FILE {
            return Err(CheckpointError::Malformed(format!(
                "{} is larger than {MAX_CHECKPOINT_FILE} bytes: not a checkpoint file",
                path.display()
            )));
        }
        Self::parse_all(&text)
    }
}

/// The largest checkpoint file read: thousands of checkpoints, but not a
/// file such as `/dev/zero`.
pub const MAX_CHECKPOINT_FILE: u64 = 1 << 20;

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{HEADER}")?;
        writeln!(f, "trail {}", self.trail)?;
        writeln!(f, "next-seq {}", self.next_seq)?;
        writeln!(f, "head-mac {}", self.head_mac)?;
        writeln!(f, "time {}", format_timestamp(self.time))
    }
}

impl FromStr for Checkpoint {
    type Err = CheckpointError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut all = Self::parse_all(text)?;
        match all.len() {
            1 => Ok(all.remove(0)),
            n => Err(CheckpointError::Malformed(format!(
                "expected one checkpoint, found {n}"
            ))),
        }
    }
}

/// A checkpoint text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The text is not a checkpoint.
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    /// The head MAC is not valid hexadecimal.
    #[error("malformed checkpoint: {0}")]
    Format(#[from] FormatError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips() {
        let checkpoint = Checkpoint {
            trail: "admin".into(),
            next_seq: 42,
            head_mac: Mac::from_bytes([0xab; 32]),
            time: DateTime::from_timestamp_micros(1_764_403_200_123_456).unwrap(),
        };
        let text = checkpoint.to_string();
        assert_eq!(text.parse::<Checkpoint>().unwrap(), checkpoint);
        let two = format!("{text}\n{text}");
        assert_eq!(Checkpoint::parse_all(&two).unwrap().len(), 2);
    }

    #[test]
    fn malformed_text_is_a_clear_error() {
        assert!(matches!(
            "hello".parse::<Checkpoint>(),
            Err(CheckpointError::Malformed(_))
        ));
        let bad_mac = "trailseal checkpoint v1\ntrail admin\nnext-seq 1\nhead-mac zz\ntime 2026-01-01T00:00:00Z";
        assert!(matches!(
            bad_mac.parse::<Checkpoint>(),
            Err(CheckpointError::Format(_))
        ));
        let bad_trail =
            "trailseal checkpoint v1\ntrail ad\u{1b}min\nnext-seq 1\nhead-mac 00\ntime x";
        assert!(bad_trail.parse::<Checkpoint>().is_err());
        let good = Checkpoint {
            trail: "admin".into(),
            next_seq: 42,
            head_mac: Mac::from_bytes([0xab; 32]),
            time: DateTime::from_timestamp_micros(1_764_403_200_123_456).unwrap(),
        }
        .to_string();
        for bad in [
            good.replace("next-seq 42", "next-seq 0"),
            good.replace("next-seq 42", "next-seq 042"),
            good.replace("trail admin\n", "trail admin\ntrail web\n"),
            good.replace("time ", "note x\ntime "),
            good.replace(".123456Z", ".123456789Z"),
            good.replace("head-mac ab", "head-mac AB"),
        ] {
            assert!(bad.parse::<Checkpoint>().is_err(), "{bad}");
        }
    }
}
