//! The configuration file (TOML): what to follow, where to seal it, with
//! which key. See "Configuration" in docs/INGEST.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use trailseal::ingest::LogFormat;
use trailseal::seal::DEFAULT_EPOCH_SECONDS;

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading the configuration {path} failed: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema.
    #[error("the configuration {path} is invalid: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser found.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A value is out of range or contradicts another.
    #[error("the configuration {path} is invalid: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The database: `sqlite:///var/lib/trailseal/trail.db` (or a plain
    /// path) or a `postgres://` URL.
    pub database: String,
    /// The sealing key's state file. The service needs no other key.
    pub sealing_key: PathBuf,
    /// Where `keygen` writes the new verification key, for the operator to
    /// move offline; the service never reads it.
    #[serde(default)]
    pub verification_key: Option<PathBuf>,
    /// Epoch length of a key made by `keygen`, in seconds: entries older
    /// than the current epoch cannot be forged with a stolen sealing key.
    #[serde(default = "default_epoch_seconds")]
    pub epoch_seconds: u64,
    /// The lock that keeps a second instance from sealing the same
    /// database; defaults to `<database file>.ingest.lock` for SQLite and
    /// must be given for PostgreSQL.
    #[serde(default)]
    pub lock_file: Option<PathBuf>,
    /// Address of the Prometheus endpoint (`GET /metrics`), e.g.
    /// `127.0.0.1:9470`; none when left out.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// How often `run` looks for new lines, in milliseconds.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Lines committed per batch.
    #[serde(default)]
    pub batch_lines: Option<usize>,
    /// After SIGTERM or SIGINT, how long a source may go on reading its
    /// backlog, in milliseconds; then the batches in flight are committed
    /// and the rest is left for the next start.
    #[serde(default = "default_stop_grace_ms")]
    pub stop_grace_ms: u64,
    /// The log files to seal.
    #[serde(rename = "source", default)]
    pub sources: Vec<SourceConfig>,
}

/// One `[[source]]` table: a file or a glob of files of one format.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// A file, or a glob (`/var/log/nginx/*.access.log`) matching only the
    /// live files: rotated copies are found by the follower itself.
    pub path: String,
    /// A format name (`web`, `postfix`, …) or `auto` (the default):
    /// detected per file from its first lines.
    #[serde(default = "auto")]
    pub format: String,
    /// The trail the lines go to, instead of the format's own trail.
    #[serde(default)]
    pub trail: Option<String>,
}

fn default_epoch_seconds() -> u64 {
    DEFAULT_EPOCH_SECONDS
}

fn default_poll_interval_ms() -> u64 {
    500
}

fn default_stop_grace_ms() -> u64 {
    10_000
}

fn auto() -> String {
    "auto".to_owned()
}

/// The format of a source as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatChoice {
    /// Detected from the file's first lines once it has some.
    Auto,
    /// Named in the configuration.
    Fixed(LogFormat),
}

impl SourceConfig {
    /// The configured format.
    pub fn format(&self) -> Result<FormatChoice, String> {
        if self.format == "auto" {
            return Ok(FormatChoice::Auto);
        }
        self.format
            .parse()
            .map(FormatChoice::Fixed)
            .map_err(|err| format!("source {}: {err}", self.path))
    }

    /// Whether `path` is a glob pattern rather than one file.
    pub fn is_glob(&self) -> bool {
        self.path.contains(['*', '?', '['])
    }
}

impl Config {
    /// Reads and checks the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        config.check().map_err(|reason| ConfigError::Invalid {
            path: path.to_owned(),
            reason,
        })?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        if self.sources.is_empty() {
            return Err("no [[source]]: name at least one log file".to_owned());
        }
        for source in &self.sources {
            source.format()?;
            if source.is_glob() {
                glob::Pattern::new(&source.path)
                    .map_err(|err| format!("source {}: {err}", source.path))?;
            }
        }
        if self.epoch_seconds == 0 {
            return Err("epoch_seconds must be at least 1".to_owned());
        }
        if self.poll_interval_ms == 0 {
            return Err("poll_interval_ms must be at least 1".to_owned());
        }
        if self.is_postgres() && self.lock_file.is_none() {
            return Err(
                "lock_file is required with a PostgreSQL database (e.g. /run/trailseal-ingest/ingest.lock)"
                    .to_owned(),
            );
        }
        Ok(())
    }

    /// Whether the database is a PostgreSQL server.
    pub fn is_postgres(&self) -> bool {
        self.database.starts_with("postgres:") || self.database.starts_with("postgresql:")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|err| err.to_string())?;
        config.check()?;
        Ok(config)
    }

    #[test]
    fn a_full_configuration_is_read() {
        let config = parse(
            r#"
            database = "sqlite:///var/lib/trailseal/trail.db"
            sealing_key = "/var/lib/trailseal/sealing.key"
            verification_key = "/root/verification.key"
            metrics_listen = "127.0.0.1:9470"
            epoch_seconds = 600

            [[source]]
            path = "/var/log/nginx/*.access.log"
            format = "web"

            [[source]]
            path = "/var/log/mail.log"
            trail = "mail-relay"
            "#,
        )
        .unwrap();
        assert_eq!(config.sources.len(), 2);
        assert!(config.sources[0].is_glob());
        assert_eq!(
            config.sources[0].format(),
            Ok(FormatChoice::Fixed(LogFormat::WebAccess))
        );
        assert_eq!(config.sources[1].format(), Ok(FormatChoice::Auto));
        assert_eq!(config.sources[1].trail.as_deref(), Some("mail-relay"));
        assert_eq!(config.epoch_seconds, 600);
        assert_eq!(config.poll_interval_ms, 500);
        assert_eq!(config.stop_grace_ms, 10_000);
        assert_eq!(config.metrics_listen.unwrap().port(), 9470);
    }

    #[test]
    fn mistakes_are_refused() {
        let base = "database = \"trail.db\"\nsealing_key = \"s.key\"\n";
        for (text, expected) in [
            (String::new(), "missing field"),
            (base.to_owned(), "no [[source]]"),
            (
                format!("{base}[[source]]\npath = \"a.log\"\nformat = \"nginx\"\n"),
                "unknown log format",
            ),
            (
                format!("{base}[[source]]\npath = \"a.log\"\nformt = \"web\"\n"),
                "unknown field",
            ),
            (
                format!("{base}[[source]]\npath = \"[a.log\"\n"),
                "source [a.log",
            ),
            (
                "database = \"postgres://db/audit\"\nsealing_key = \"s.key\"\n[[source]]\npath = \"a.log\"\n"
                    .to_owned(),
                "lock_file is required",
            ),
        ] {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
