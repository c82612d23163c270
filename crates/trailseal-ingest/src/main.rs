//! Seals server log files into trails in SQLite or PostgreSQL, then
//! verifies what it wrote.
//!
//! ```sh
//! trailseal-ingest /var/log/nginx/access.log
//! trailseal-ingest --database sqlite://trailseal-data/trail.db \
//!     --keys trailseal-data/keys --format postfix /var/log/mail.log
//! trailseal-ingest \
//!     --database postgres://panel@db.example.net/audit /var/log/nginx/access.log
//! ```
//!
//! Each file's format is detected from its first lines unless `--format`
//! names it. A rerun continues every file where the last run stopped: the
//! read position is sealed with the lines.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
#[cfg(feature = "postgres")]
use trailseal::PostgresStore;
use trailseal::ingest::{Follower, IngestStats, LogFormat};
use trailseal::{
    SealingKey, SqliteStore, Store, Trail, VerificationKey, Verifier,
    seal::{DEFAULT_EPOCH_SECONDS, SEALING_KEY_FILE, VERIFICATION_KEY_FILE},
    store::SqliteStoreOptions,
};

/// Seal server log files into tamper-evident trails.
#[derive(Parser, Debug)]
struct Args {
    /// The database: a SQLite URL or path, or a `postgres://` URL.
    #[arg(
        long,
        value_name = "URL",
        default_value = "sqlite://trailseal-data/trail.db"
    )]
    database: String,
    /// The folder with `verification.key` and `sealing.key`; both are
    /// created when missing.
    #[arg(long, value_name = "DIR", default_value = "trailseal-data/keys")]
    keys: PathBuf,
    /// The format of every file (web, postfix, dovecot, mailman, php-mail,
    /// pure-ftpd, vsftpd); detected per file when left out.
    #[arg(long, value_name = "FORMAT")]
    format: Option<LogFormat>,
    /// The log files.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let database = Database::open(&args.database).await?;
    let store = database.store();
    let (sealing, verification) = open_keys(&args.keys, Utc::now())?;
    let sealing = Arc::new(sealing);

    // One trail per format's trail name, one follower per file.
    let mut trails: BTreeMap<&str, Trail> = BTreeMap::new();
    let mut followers = Vec::new();
    let mut to_read = 0;
    for path in &args.files {
        let format = match args.format {
            Some(format) => format,
            None => detect(path)?,
        };
        let trail = match trails.get(format.trail()) {
            Some(trail) => trail.clone(),
            None => {
                let trail = Trail::open(format.trail(), store.clone(), sealing.clone()).await?;
                trails.insert(format.trail(), trail.clone());
                trail
            }
        };
        // The absolute path names the source, so that a rerun from another
        // folder continues it.
        let source = std::path::absolute(path)?.display().to_string();
        let follower = Follower::builder(trail, store.clone(), path, format)
            .source(source)
            .start()
            .await?;
        let offset = follower.position().map_or(0, |position| position.offset);
        to_read += lines_after(path, offset)?;
        println!("{} ({format}) → trail {}", path.display(), format.trail());
        followers.push((path.clone(), format, follower));
    }

    // Seal every file at once; the bar counts the entries appearing in the
    // trails.
    let bar = ProgressBar::new(to_read);
    bar.set_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} lines, {per_sec}, {elapsed}",
    )?);
    let heads = sealed_entries(store.as_ref(), &trails).await?;
    let started = Instant::now();
    let tasks: Vec<_> = followers
        .into_iter()
        .map(|(path, format, mut follower)| {
            tokio::spawn(async move {
                follower.poll().await?;
                let done = Instant::now();
                Ok::<_, trailseal::ingest::IngestError>((path, format, follower.stats(), done))
            })
        })
        .collect();
    while !tasks.iter().all(|task| task.is_finished()) {
        let sealed = sealed_entries(store.as_ref(), &trails).await? - heads;
        bar.set_position(sealed.min(to_read));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bar.finish_and_clear();

    let mut total = IngestStats::default();
    let mut finished = started;
    for task in tasks {
        let (path, format, stats, done) = task.await??;
        finished = finished.max(done);
        println!(
            "{}: {} lines as {format}, {} unparsed, {} not UTF-8",
            path.display(),
            stats.lines,
            stats.unparsed,
            stats.invalid_utf8
        );
        total.lines += stats.lines;
        total.bytes += stats.bytes;
    }
    let elapsed = finished - started;
    println!(
        "\nSealed {} lines ({:.1} MB) in {:.2} s: {:.0} lines/s\n",
        total.lines,
        total.bytes as f64 / 1e6,
        elapsed.as_secs_f64(),
        total.lines as f64 / elapsed.as_secs_f64().max(1e-9)
    );

    let mut intact = true;
    for trail in trails.values() {
        trail.shutdown().await?;
    }
    match verification {
        Some(verification) => {
            let verifier = Verifier::new(verification);
            for name in trails.keys() {
                let report = verifier.verify_trail(store.as_ref(), name).await?;
                intact &= report.is_intact();
                print!("{report}");
            }
            println!(
                "\n{}",
                if intact {
                    "Every trail written is intact."
                } else {
                    "TAMPERING FOUND: see the findings above."
                }
            );
        }
        None => println!(
            "{VERIFICATION_KEY_FILE} is not in {} (it belongs offline): verify the trails with audit-verify.",
            args.keys.display()
        ),
    }
    database.close().await;
    if !intact {
        std::process::exit(1);
    }
    Ok(())
}

/// The format that parses most of the file's first lines.
fn detect(path: &Path) -> Result<LogFormat, Box<dyn std::error::Error>> {
    let mut head = Vec::new();
    std::fs::File::open(path)?
        .take(64 * 1024)
        .read_to_end(&mut head)?;
    LogFormat::detect(head.split(|&b| b == b'\n')).ok_or_else(|| {
        format!(
            "{}: format not recognised, name it with --format",
            path.display()
        )
        .into()
    })
}

/// Complete lines from `offset` to the end of the file.
fn lines_after(path: &Path, offset: u64) -> std::io::Result<u64> {
    let mut file = BufReader::new(std::fs::File::open(path)?);
    file.seek(SeekFrom::Start(offset))?;
    let mut lines = 0;
    loop {
        let chunk = file.fill_buf()?;
        if chunk.is_empty() {
            return Ok(lines);
        }
        lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        let len = chunk.len();
        file.consume(len);
    }
}

/// Entries in `trails` so far (the seq of each head, summed).
async fn sealed_entries(
    store: &dyn Store,
    trails: &BTreeMap<&str, Trail>,
) -> Result<u64, trailseal::StoreError> {
    let mut entries = 0;
    for trail in trails.keys() {
        entries += store.head(trail).await?.map_or(0, |head| head.seq);
    }
    Ok(entries)
}

/// The database the trails are sealed into.
enum Database {
    Sqlite(SqliteStore),
    #[cfg(feature = "postgres")]
    Postgres(PostgresStore),
}

impl Database {
    /// Opens a `postgres://` URL on a server, anything else as SQLite.
    async fn open(url: &str) -> Result<Self, Box<dyn std::error::Error>> {
        #[cfg(feature = "postgres")]
        if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            return Ok(Self::Postgres(PostgresStore::connect(url).await?));
        }
        let options = SqliteStoreOptions::from_url(url)?;
        let store = options.clone().open().await;
        if let Err(trailseal::StoreError::Io { path, .. }) = &store
            && let Some(folder) = path.parent().filter(|folder| !folder.exists())
        {
            // First run: make the data folder, then try again.
            std::fs::create_dir_all(folder)?;
            return Ok(Self::Sqlite(options.open().await?));
        }
        Ok(Self::Sqlite(store?))
    }

    fn store(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(store) => Arc::new(store.clone()),
            #[cfg(feature = "postgres")]
            Self::Postgres(store) => Arc::new(store.clone()),
        }
    }

    async fn close(&self) {
        match self {
            Self::Sqlite(store) => store.close().await,
            #[cfg(feature = "postgres")]
            Self::Postgres(store) => store.close().await,
        }
    }
}

/// The sealing key of `dir`, created there with its verification key on
/// the first run; the verification key too when it lies in `dir` (it
/// belongs offline, so it may not).
fn open_keys(
    dir: &Path,
    genesis: DateTime<Utc>,
) -> Result<(SealingKey, Option<VerificationKey>), Box<dyn std::error::Error>> {
    let (sealing, created) = SealingKey::open_or_create(dir, genesis, DEFAULT_EPOCH_SECONDS)?;
    if created.is_some() {
        println!(
            "Created key {} in {}: {VERIFICATION_KEY_FILE} (keep it offline) and {SEALING_KEY_FILE}\n",
            sealing.key_id(),
            dir.display(),
        );
    }
    let verification = match created {
        Some(key) => Some(key),
        None => {
            let path = dir.join(VERIFICATION_KEY_FILE);
            path.exists()
                .then(|| VerificationKey::load(&path))
                .transpose()?
        }
    };
    Ok((sealing, verification))
}
