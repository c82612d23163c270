//! `audit-verify`: proves a trailseal trail intact, or names every entry
//! that was changed, removed, reordered, backdated or truncated.
//!
//! Exit codes: 0 intact, 1 findings, 2 usage, I/O or key error.

// Verification decodes entries on some threads and drops them on another;
// mimalloc keeps those cross-thread frees cheap.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use trailseal::{
    Checkpoint, SealingKey, Store, TrailReport, VerificationKey, Verifier,
    model::escape_text,
    read::{JsonLinesReader, export_json_lines},
    seal::{describe_schedule, key_file_exposure, new_key_id},
};

/// Verify tamper-evident audit trails sealed by trailseal.
///
/// SOURCE is a `sqlite://…` or `postgres://…` database URL, or a `.jsonl`
/// export. `audit-verify SOURCE --key FILE` is short for `audit-verify verify`.
///
/// Exit codes: 0 the trail is intact, 1 findings (tampering or a policy
/// violation; each names trail, seq and what is wrong), 2 usage, I/O or key
/// error.
#[derive(Parser, Debug)]
#[command(name = "audit-verify", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    verify: VerifyArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a key pair: `verification.key` (keep offline) and
    /// `sealing.key` (for the panel server), both mode 0600.
    Keygen(KeygenArgs),
    /// Verify every trail of SOURCE (or the named ones) and report findings.
    Verify(VerifyArgs),
    /// Verify, then print one checkpoint per trail to store off the machine;
    /// later `verify --checkpoint` detects truncation and rollback with it.
    Checkpoint(CheckpointArgs),
    /// Export trails losslessly as JSON Lines (to stdout), for offline
    /// verification without database access.
    Export(ExportArgs),
}

#[derive(Args, Debug)]
struct KeygenArgs {
    /// Folder to write `verification.key` and `sealing.key` into (created if
    /// missing; existing key files are never overwritten).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Key id recorded in every entry (default: `ts-YYYYMMDD-<random>`).
    #[arg(long)]
    key_id: Option<String>,
    /// Epoch length in seconds: how long a stolen sealing key can rewrite
    /// recent entries.
    #[arg(long, default_value_t = trailseal::seal::DEFAULT_EPOCH_SECONDS)]
    epoch_seconds: u64,
}

#[derive(Args, Debug, Default)]
struct VerifyArgs {
    /// The trail store: `sqlite://PATH`, `postgres://…` or a `.jsonl` export.
    #[arg(value_name = "SOURCE")]
    source: Option<String>,
    /// Verification key file; repeat for keys before a rotation.
    #[arg(long = "key", value_name = "FILE")]
    keys: Vec<PathBuf>,
    /// Verify only this trail; repeat for several.
    #[arg(long = "trail", value_name = "NAME")]
    trails: Vec<String>,
    /// Checkpoint file exported earlier; repeat for several.
    #[arg(long = "checkpoint", value_name = "FILE")]
    checkpoints: Vec<PathBuf>,
    /// Youngest age, in days, at which retention may have deleted entries;
    /// a retention record that deleted younger ones is a finding.
    #[arg(long = "min-retention-days", value_name = "DAYS",
          default_value_t = trailseal::verify::DEFAULT_MINIMUM_RETENTION_DAYS,
          value_parser = clap::value_parser!(i64).range(0..=36_500))]
    min_retention_days: i64,
    /// Verify as of this time (RFC 3339) instead of the clock: entries dated
    /// after it are findings.
    #[arg(long = "now", value_name = "TIME")]
    now: Option<DateTime<Utc>>,
    /// Print the report as JSON (schema in docs/VERIFY.md).
    #[arg(long)]
    json: bool,
    /// No progress display.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct CheckpointArgs {
    /// The trail store: `sqlite://PATH`, `postgres://…` or a `.jsonl` export.
    #[arg(value_name = "SOURCE")]
    source: String,
    /// Verification key file; repeat for keys before a rotation.
    #[arg(long = "key", value_name = "FILE", required = true)]
    keys: Vec<PathBuf>,
    /// Only this trail; repeat for several.
    #[arg(long = "trail", value_name = "NAME")]
    trails: Vec<String>,
    /// Checkpoint file exported earlier, checked before a new one is
    /// written; repeat for several.
    #[arg(long = "checkpoint", value_name = "FILE")]
    checkpoints: Vec<PathBuf>,
    /// No progress display.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct ExportArgs {
    /// The trail store: `sqlite://PATH` or `postgres://…`.
    #[arg(value_name = "SOURCE")]
    source: String,
    /// Only this trail; repeat for several.
    #[arg(long = "trail", value_name = "NAME")]
    trails: Vec<String>,
}

/// A failure that stops the run: exit code 2.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(err: E) -> Self {
        Failure(err.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return fail(&format!("cannot start: {err}")),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Some(Command::Keygen(args)) => keygen(args),
            Some(Command::Verify(args)) => verify(args).await,
            Some(Command::Checkpoint(args)) => checkpoint(args).await,
            Some(Command::Export(args)) => export(args).await,
            None => verify(cli.verify).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(Failure(message)) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("audit-verify: error: {}", escape_text(message));
    ExitCode::from(2)
}

fn keygen(args: KeygenArgs) -> Result<ExitCode, Failure> {
    let now = Utc::now();
    let key_id = match args.key_id {
        Some(id) => id,
        None => new_key_id(now)?,
    };
    let (sealing, _) = SealingKey::create_files(&args.out, &key_id, now, args.epoch_seconds)?;
    let dir = args.out.display();
    println!(
        "created key {} ({})",
        sealing.key_id(),
        describe_schedule(sealing.schedule())
    );
    println!(
        "  {dir}/{}  keep OFFLINE (auditor's machine, a safe): it verifies the trail, and could forge it",
        trailseal::seal::VERIFICATION_KEY_FILE
    );
    println!(
        "  {dir}/{}  install on the panel server, readable only by the panel: the writer evolves it every epoch",
        trailseal::seal::SEALING_KEY_FILE
    );
    Ok(ExitCode::SUCCESS)
}

fn load_verifier(keys: &[PathBuf]) -> Result<Verifier, Failure> {
    let mut loaded = keys.iter().map(|path| {
        if let Some(mode) = key_file_exposure(path) {
            eprintln!(
                "audit-verify: warning: {} can be read by other users (mode {mode:o}); whoever reads it can forge every trail it verifies",
                escape_text(&path.display().to_string())
            );
        }
        VerificationKey::load(path)
    });
    let first = loaded
        .next()
        .ok_or_else(|| Failure("no verification key given; pass --key FILE".into()))??;
    loaded.try_fold(Verifier::new(first), |verifier, key| {
        Ok(verifier.with_key(key?))
    })
}

/// Adds the checkpoints of the files given to the verifier.
fn with_checkpoints(mut verifier: Verifier, files: &[PathBuf]) -> Result<Verifier, Failure> {
    for path in files {
        let checkpoints = Checkpoint::read_file(path)
            .map_err(|err| Failure(format!("{}: {err}", path.display())))?;
        if checkpoints.is_empty() {
            return Err(Failure(format!("{}: holds no checkpoint", path.display())));
        }
        for checkpoint in checkpoints {
            verifier = verifier.with_checkpoint(checkpoint);
        }
    }
    Ok(verifier)
}

/// Where entries come from.
enum Source {
    Store(Arc<dyn Store>),
    JsonLines(PathBuf),
}

async fn open_source(source: &str) -> Result<Source, Failure> {
    if source.starts_with("sqlite:")
        || source.starts_with("postgres:")
        || source.starts_with("postgresql:")
    {
        return open_database(source).await.map(Source::Store);
    }
    let path = Path::new(source);
    if path.extension().is_some_and(|ext| ext == "jsonl") || path.is_file() {
        return Ok(Source::JsonLines(path.to_owned()));
    }
    Err(Failure(format!(
        "unknown source {:?}: use sqlite://PATH, postgres://… or a .jsonl export",
        source
    )))
}

/// Opens a database source read-only: verifying never writes.
async fn open_database(url: &str) -> Result<Arc<dyn Store>, Failure> {
    #[cfg(feature = "sqlite")]
    if url.starts_with("sqlite:") {
        let store = trailseal::store::SqliteStoreOptions::from_url(url)?
            .create_if_missing(false)
            .read_only(true)
            .open()
            .await?;
        return Ok(Arc::new(store));
    }
    #[cfg(feature = "postgres")]
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        return Ok(Arc::new(trailseal::PostgresStore::connect(url).await?));
    }
    Err(Failure(format!(
        "{}: this build has no backend for this source",
        escape_text(url)
    )))
}

/// Whether to show progress: only when a person watches a terminal, and
/// never with `--quiet` or when the report is piped.
fn show_progress(quiet: bool, json: bool) -> bool {
    !quiet && std::io::stderr().is_terminal() && (json || std::io::stdout().is_terminal())
}

fn progress_bar(visible: bool, total: u64, template: &str) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

async fn run_verification(
    verifier: &Verifier,
    source: &Source,
    trails: &[String],
    show_progress: bool,
) -> Result<Vec<TrailReport>, Failure> {
    let reports = match source {
        Source::JsonLines(path) => {
            let file = std::fs::File::open(path)
                .map_err(|err| Failure(format!("{}: {err}", path.display())))?;
            // An export's entries are counted only by reading it; its size
            // is known up front.
            let size = file.metadata().map(|meta| meta.len()).unwrap_or(0);
            let bar = progress_bar(
                show_progress,
                size,
                "{msg} [{bar:30}] {bytes}/{total_bytes}, {bytes_per_sec}, {eta} left",
            );
            bar.set_message(format!(
                "verifying {}",
                escape_text(&path.display().to_string())
            ));
            let input = BufReader::with_capacity(1 << 20, bar.wrap_read(file));
            let reports = verifier.verify_entries(JsonLinesReader::new(input), trails);
            bar.finish_and_clear();
            reports?
        }
        Source::Store(store) => {
            // What the store lists, and what the checkpoints name: a trail
            // deleted whole is missing, not absent from the report.
            let names: Vec<String> = if trails.is_empty() {
                let mut names: std::collections::BTreeSet<String> =
                    store.trails().await?.into_iter().collect();
                names.extend(verifier.checkpoint_trails().map(str::to_owned));
                names.into_iter().collect()
            } else {
                trails.to_vec()
            };
            // A trail's head seq counts its entries without reading them.
            let mut total = 0;
            if show_progress {
                for trail in &names {
                    total += store.head(trail).await?.map_or(0, |head| head.seq + 1);
                }
            }
            let bar = progress_bar(
                show_progress,
                total,
                "{msg} [{bar:30}] {human_pos}/{human_len} entries, {per_sec}, {eta} left",
            );
            let mut reports = Vec::new();
            for trail in names {
                // Names come from storage: shown escaped, like everything.
                bar.set_message(format!("verifying trail {}", escape_text(&trail)));
                let entries =
                    futures_util::StreamExt::inspect(store.scan_stored(&trail, 0), |_| bar.inc(1));
                let mut report = verifier.verify_stored_stream(&trail, entries).await?;
                verifier
                    .check_snapshots(store.as_ref(), &mut report)
                    .await?;
                reports.push(report);
            }
            bar.finish_and_clear();
            reports
        }
    };
    // A trail asked for by name that has nothing stored, and that no
    // checkpoint names, is a mistake in the command, not a finding.
    for trail in trails {
        let named = verifier.checkpoint_trails().any(|name| name == trail);
        let stored = reports
            .iter()
            .any(|report| &report.trail == trail && report.entries > 0);
        if !named && !stored {
            return Err(Failure(format!(
                "no trail named {:?} in the source",
                escape_text(trail)
            )));
        }
    }
    if reports.is_empty() {
        return Err(Failure(
            "nothing to verify: the source holds no trail, and no checkpoint names one".into(),
        ));
    }
    Ok(reports)
}

/// The `--json` report (documented in docs/VERIFY.md).
#[derive(Serialize)]
struct JsonReport<'a> {
    format: &'static str,
    version: u32,
    intact: bool,
    findings: usize,
    verified_against: Basis,
    trails: &'a [TrailReport],
}

async fn verify(args: VerifyArgs) -> Result<ExitCode, Failure> {
    let source_arg = args
        .source
        .ok_or_else(|| Failure("no SOURCE given; see audit-verify --help".into()))?;
    let mut verifier = load_verifier(&args.keys)?
        .minimum_retention(chrono::Duration::days(args.min_retention_days));
    if let Some(now) = args.now {
        verifier = verifier.at(now);
    }
    let verifier = with_checkpoints(verifier, &args.checkpoints)?;
    let source = open_source(&source_arg).await?;
    let show = show_progress(args.quiet, args.json);
    let reports = run_verification(&verifier, &source, &args.trails, show).await?;
    let findings: usize = reports.iter().map(|report| report.findings.len()).sum();
    let mut out = std::io::stdout().lock();
    if args.json {
        let report = JsonReport {
            format: "trailseal-verify-report",
            version: 2,
            intact: findings == 0,
            findings,
            verified_against: Basis::of(&verifier),
            trails: &reports,
        };
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write_human_report(&mut out, &source_arg, &verifier, &reports, findings)?;
    }
    Ok(if findings == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What a verification was made against, so that a reader knows what
/// "intact" covers.
#[derive(Serialize)]
struct Basis {
    /// The key ids of the verification keys given.
    keys: Vec<String>,
    /// The trails and sizes of the checkpoints given.
    checkpoints: Vec<String>,
    /// The time entries were checked against.
    clock: String,
    /// How far a writer's clock may be ahead of it, in seconds.
    clock_skew_seconds: i64,
}

impl Basis {
    fn of(verifier: &Verifier) -> Self {
        let mut keys: Vec<String> = verifier.key_ids().map(str::to_owned).collect();
        keys.sort();
        Self {
            keys,
            checkpoints: verifier.checkpoint_trails().map(str::to_owned).collect(),
            clock: trailseal::model::format_timestamp(verifier.now()),
            clock_skew_seconds: trailseal::model::MAX_CLOCK_SKEW.num_seconds(),
        }
    }
}

fn write_human_report(
    out: &mut impl Write,
    source: &str,
    verifier: &Verifier,
    reports: &[TrailReport],
    findings: usize,
) -> std::io::Result<()> {
    writeln!(out, "audit-verify {}", escape_text(source))?;
    let basis = Basis::of(verifier);
    let checkpoints = if basis.checkpoints.is_empty() {
        "no checkpoints (a cut-off tail or an older copy goes unnoticed)".to_owned()
    } else {
        format!("checkpoints of {}", basis.checkpoints.join(", "))
    };
    writeln!(
        out,
        "verified against: key {}; {checkpoints}; clock {}",
        escape_text(&basis.keys.join(", ")),
        basis.clock
    )?;
    for report in reports {
        // TrailReport's Display escapes everything that came from storage.
        write!(out, "{report}")?;
    }
    let entries: u64 = reports.iter().map(|report| report.entries).sum();
    let trails = plural(reports.len() as u64, "trail");
    if findings == 0 {
        return writeln!(
            out,
            "INTACT: {trails}, {} verified",
            plural(entries, "entry")
        );
    }
    let damaged = reports.iter().filter(|report| !report.is_intact()).count();
    let only_keys = reports
        .iter()
        .flat_map(|report| &report.findings)
        .all(|finding| finding.kind.is_key_problem());
    let verdict = if only_keys {
        "NOT VERIFIED: the keys given do not fit"
    } else {
        "TAMPERING OR POLICY VIOLATIONS FOUND"
    };
    writeln!(
        out,
        "{verdict}: {} in {damaged} of {trails} ({} read)",
        plural(findings as u64, "finding"),
        plural(entries, "entry")
    )
}

fn plural(count: u64, noun: &str) -> String {
    match (count, noun) {
        (1, _) => format!("1 {noun}"),
        (_, "entry") => format!("{count} entries"),
        _ => format!("{count} {noun}s"),
    }
}

async fn checkpoint(args: CheckpointArgs) -> Result<ExitCode, Failure> {
    let verifier = with_checkpoints(load_verifier(&args.keys)?, &args.checkpoints)?;
    let source = open_source(&args.source).await?;
    let show = show_progress(args.quiet, false);
    let reports = run_verification(&verifier, &source, &args.trails, show).await?;
    let damaged: Vec<&TrailReport> = reports
        .iter()
        .filter(|report| !report.is_intact())
        .collect();
    if !damaged.is_empty() {
        // A checkpoint vouches for a head; never vouch for a damaged trail.
        for report in damaged {
            eprint!("{report}");
        }
        eprintln!("audit-verify: no checkpoints written: the trails above have findings");
        return Ok(ExitCode::from(1));
    }
    let mut out = std::io::stdout().lock();
    let now = Utc::now();
    for checkpoint in reports.iter().filter_map(|report| report.checkpoint(now)) {
        write!(out, "{checkpoint}")?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn export(args: ExportArgs) -> Result<ExitCode, Failure> {
    let Source::Store(store) = open_source(&args.source).await? else {
        return Err(Failure(
            "export reads a database; the source is already an export".into(),
        ));
    };
    let mut out = std::io::stdout().lock();
    export_json_lines(store.as_ref(), &args.trails, &mut out).await?;
    Ok(ExitCode::SUCCESS)
}
