//! Following the configured sources: one task per file, each polling its
//! `Follower`, the files of globs looked up again while running.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, watch};
use tokio::task::JoinSet;
use tracing::{error, info, warn};
use trailseal::ingest::{Detection, Follower, IngestError, LogFormat, Position};
use trailseal::{SealingKey, Store, Trail};

use crate::config::{Config, FormatChoice, SourceConfig};
use crate::metrics::Metrics;

/// How much of a file's start the format is guessed from.
const DETECT_BYTES: u64 = 64 * 1024;

/// How the sources are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Everything readable now, then stop.
    Once,
    /// Until told to stop, then everything readable at that moment.
    Run,
}

/// Why a source could not be read or sealed this time.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// `format = "auto"` and the file's first lines fit no format.
    #[error("{0}: format not recognised from its first lines; name it with format = \"...\"")]
    FormatNotRecognised(String),
    /// Reading the file's first lines failed.
    #[error("reading {path} failed: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The trail could not be opened.
    #[error("opening trail {trail} failed: {source}")]
    Trail {
        /// The trail.
        trail: String,
        /// What the trail reported.
        #[source]
        source: trailseal::Error,
    },
    /// Following the file failed; nothing past the last commit counts, and
    /// the next attempt starts there.
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

/// The running service: the configuration, the store, the key, and the
/// trails opened so far.
pub struct Service {
    config: Config,
    store: Arc<dyn Store>,
    sealing: Arc<SealingKey>,
    trails: Mutex<BTreeMap<String, Trail>>,
    metrics: Arc<Metrics>,
}

impl Service {
    /// A service sealing into `store` with `sealing`.
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        sealing: SealingKey,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            config,
            store,
            sealing: Arc::new(sealing),
            trails: Mutex::new(BTreeMap::new()),
            metrics,
        })
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(self.config.poll_interval_ms)
    }

    /// Seals the sources until done (`Once`) or until `stop` turns true
    /// (`Run`), then shuts the trails down, which seals them. Returns
    /// whether every source's last attempt and every shutdown succeeded.
    pub async fn run(self: Arc<Self>, mode: Mode, mut stop: watch::Receiver<bool>) -> bool {
        let mut known = BTreeSet::new();
        let mut tasks = JoinSet::new();
        self.warn_of_missing_files();
        loop {
            for (path, index) in self.discover() {
                if known.insert(path.clone()) {
                    let service = self.clone();
                    let stop = stop.clone();
                    tasks.spawn(async move { service.follow_file(path, index, stop, mode).await });
                }
            }
            if mode == Mode::Once {
                break;
            }
            tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => break,
                () = tokio::time::sleep(self.interval()) => {}
            }
        }
        let mut ok = true;
        while let Some(joined) = tasks.join_next().await {
            ok &= joined.unwrap_or_else(|err| {
                error!("a source's task ended abnormally: {err}");
                false
            });
        }
        let trails = std::mem::take(&mut *self.trails.lock().await);
        for (name, trail) in trails {
            if let Err(err) = trail.shutdown().await {
                error!(trail = name, "shutting the trail down failed: {err}");
                ok = false;
            }
        }
        for (source, figures) in self.metrics.snapshot() {
            let stats = figures.stats;
            info!(
                source,
                trail = figures.trail,
                lines = stats.lines,
                unparsed = stats.unparsed,
                invalid_utf8 = stats.invalid_utf8,
                "sealed"
            );
            if stats.unparsed > 0 {
                warn!(
                    source,
                    unparsed = stats.unparsed,
                    "lines sealed as log.unparsed: no parser recognised them"
                );
            }
        }
        ok
    }

    /// Says which sources name no file now: waited for (a log may appear
    /// with its first line), but a typo in a path would otherwise go
    /// unnoticed.
    fn warn_of_missing_files(&self) {
        for source in &self.config.sources {
            let missing = if source.is_glob() {
                glob::glob(&source.path).map_or(true, |mut paths| {
                    !paths.any(|path| path.is_ok_and(|path| path.is_file()))
                })
            } else {
                !Path::new(&source.path).exists()
            };
            if missing {
                warn!(
                    source = source.path,
                    "no such file yet: waiting for it to appear"
                );
            }
        }
    }

    /// The files the sources name now, each with the index of the first
    /// source naming it (a file is followed once, whatever names it).
    fn discover(&self) -> Vec<(PathBuf, usize)> {
        let mut files = BTreeMap::new();
        for (index, source) in self.config.sources.iter().enumerate() {
            let paths: Vec<PathBuf> = if source.is_glob() {
                match glob::glob(&source.path) {
                    Ok(paths) => paths
                        .filter_map(Result::ok)
                        .filter(|path| path.is_file())
                        .collect(),
                    Err(err) => {
                        error!(source = source.path, "invalid glob: {err}");
                        Vec::new()
                    }
                }
            } else {
                vec![PathBuf::from(&source.path)]
            };
            for path in paths {
                // The absolute path names the source in its entries, so a
                // run from another folder continues it.
                let path = std::path::absolute(&path).unwrap_or(path);
                files.entry(path).or_insert(index);
            }
        }
        files.into_iter().collect()
    }

    /// Follows one file until done; returns whether its last attempt
    /// succeeded.
    async fn follow_file(
        self: Arc<Self>,
        path: PathBuf,
        index: usize,
        mut stop: watch::Receiver<bool>,
        mode: Mode,
    ) -> bool {
        let source = &self.config.sources[index];
        let name = path.display().to_string();
        self.metrics.update(&name, |figures| {
            figures.trail = source.trail.clone().unwrap_or_default();
        });
        let mut follower = None;
        let mut last_error = None;
        let grace = Duration::from_millis(self.config.stop_grace_ms);
        loop {
            let stopping = *stop.borrow();
            // A stop lets the step go on for the grace period, then drops
            // it: the batches it handed to the trail are committed when the
            // trail shuts down (a batch is all or nothing, and the read
            // position is part of it), the rest is read at the next start.
            let cut_off = async {
                let _ = stop.wait_for(|stopped| *stopped).await;
                tokio::time::sleep(grace).await;
            };
            let result = tokio::select! {
                result = self.step(&path, &name, source, &mut follower) => result,
                () = cut_off => {
                    warn!(
                        source = name,
                        "stopped before the end of the file: the batches read are sealed, the rest is read at the next start"
                    );
                    return true;
                }
            };
            let ok = result.is_ok();
            match result {
                Ok(()) => {
                    if last_error.take().is_some() {
                        info!(source = name, "the source works again");
                    }
                }
                Err(err) => {
                    let message = err.to_string();
                    // Retried every poll: said once, counted every time.
                    if last_error.as_ref() != Some(&message) {
                        error!(source = name, "{message}");
                    }
                    last_error = Some(message);
                    self.metrics.update(&name, |figures| {
                        figures.errors += 1;
                        figures.failing = true;
                    });
                }
            }
            if mode == Mode::Once || stopping {
                return ok;
            }
            tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => {}
                () = tokio::time::sleep(self.interval()) => {}
            }
        }
    }

    /// Starts the follower once the format is known, then seals what can be
    /// read now.
    async fn step(
        &self,
        path: &Path,
        name: &str,
        source: &SourceConfig,
        follower: &mut Option<Follower>,
    ) -> Result<(), SourceError> {
        if follower.is_none() {
            let format = match source.format() {
                Ok(FormatChoice::Fixed(format)) => format,
                // Checked when the configuration was loaded.
                Err(_) | Ok(FormatChoice::Auto) => match detect(path)? {
                    Some(format) => format,
                    // Nothing to tell the format from yet (no file, or no
                    // complete line): wait for content.
                    None => return Ok(()),
                },
            };
            let trail_name = source
                .trail
                .clone()
                .unwrap_or_else(|| format.trail().to_owned());
            let trail = self.trail(&trail_name).await?;
            let mut builder =
                Follower::builder(trail, self.store.clone(), path, format).source(name);
            if let Some(lines) = self.config.batch_lines {
                builder = builder.batch_lines(lines);
            }
            let started = builder.start().await?;
            info!(
                source = name,
                %format,
                trail = trail_name,
                offset = started.position().map_or(0, |position| position.offset),
                "following"
            );
            self.metrics
                .update(name, |figures| figures.trail = trail_name.clone());
            *follower = Some(started);
        }
        let Some(follower) = follower.as_mut() else {
            return Ok(());
        };
        let result = follower.poll().await;
        let lag_bytes = lag(path, follower.position());
        let stats = follower.stats();
        self.metrics.update(name, |figures| {
            figures.stats = stats;
            figures.lag_bytes = lag_bytes;
            figures.failing = false;
            if matches!(result, Ok(sealed) if sealed > 0) {
                figures.last_commit = Some(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0.0, |since| since.as_secs_f64()),
                );
            }
        });
        result?;
        Ok(())
    }

    /// The trail named `name`, opened on first use and shared by its
    /// sources.
    async fn trail(&self, name: &str) -> Result<Trail, SourceError> {
        let mut trails = self.trails.lock().await;
        if let Some(trail) = trails.get(name) {
            return Ok(trail.clone());
        }
        let trail = Trail::open(name, self.store.clone(), self.sealing.clone())
            .await
            .map_err(|source| SourceError::Trail {
                trail: name.to_owned(),
                source,
            })?;
        trails.insert(name.to_owned(), trail.clone());
        Ok(trail)
    }
}

/// The format that fits the file's first complete lines; `None` while there
/// are none (the file is missing, empty, or its first line unfinished).
fn detect(path: &Path) -> Result<Option<LogFormat>, SourceError> {
    let io = |source| SourceError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(io(err)),
    };
    let mut head = Vec::new();
    file.take(DETECT_BYTES).read_to_end(&mut head).map_err(io)?;
    let Some(end) = head.iter().rposition(|&byte| byte == b'\n') else {
        return Ok(None);
    };
    match LogFormat::detect_sample(head[..end].split(|&byte| byte == b'\n')) {
        Detection::Format(format) => Ok(Some(format)),
        Detection::Empty => Ok(None),
        _ => Err(SourceError::FormatNotRecognised(path.display().to_string())),
    }
}

/// Bytes after the sealed position in the file the path names now (all of
/// it when nothing of that file is sealed yet).
fn lag(path: &Path, position: Option<Position>) -> u64 {
    let Ok(metadata) = std::fs::metadata(path) else {
        return 0;
    };
    match position {
        Some(position) if same_file(&metadata, &position) => {
            metadata.len().saturating_sub(position.offset)
        }
        _ => metadata.len(),
    }
}

#[cfg(unix)]
fn same_file(metadata: &std::fs::Metadata, position: &Position) -> bool {
    use std::os::unix::fs::MetadataExt;
    metadata.dev() == position.file.device && metadata.ino() == position.file.inode
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &Position) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_or_unfinished_file_is_not_yet_recognisable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        assert!(detect(&path).unwrap().is_none(), "missing");
        std::fs::write(&path, "").unwrap();
        assert!(detect(&path).unwrap().is_none(), "empty");
        std::fs::write(&path, "\n\r\n\n").unwrap();
        assert!(detect(&path).unwrap().is_none(), "blank lines only");
        let line = "203.0.113.9 - - [29/Nov/2026:08:00:00 +0000] \"GET / HTTP/1.1\" 200 12 \"-\" \"curl/8\"";
        std::fs::write(&path, line).unwrap();
        assert!(detect(&path).unwrap().is_none(), "no complete line");
        std::fs::write(&path, format!("{line}\n")).unwrap();
        assert_eq!(detect(&path).unwrap(), Some(LogFormat::WebAccess));
        std::fs::write(&path, "no format at all\nnone\n").unwrap();
        assert!(matches!(
            detect(&path),
            Err(SourceError::FormatNotRecognised(_))
        ));
    }
}
