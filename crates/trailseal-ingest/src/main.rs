//! `trailseal-ingest`: seals server log files into trails in SQLite or
//! PostgreSQL, following them through rotation and restarts.
//!
//! ```sh
//! trailseal-ingest keygen --config /etc/trailseal/ingest.toml
//! trailseal-ingest run --config /etc/trailseal/ingest.toml    # a service
//! trailseal-ingest once --config /etc/trailseal/ingest.toml   # from cron
//! ```
//!
//! What to follow and where to seal it is in the configuration file; see
//! docs/INGEST.md ("Running the service", "Configuration", "Metrics") for
//! it, the exit statuses and a systemd unit.

#![forbid(unsafe_code)]

mod config;
mod database;
mod keys;
mod lock;
mod metrics;
mod service;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chrono::Utc;
use clap::{Args, Parser, Subcommand};
use tokio::sync::watch;
use tracing::{error, info};

use config::Config;
use database::Database;
use metrics::Metrics;
use service::{Mode, Service};

/// Every source sealed as far as it could be read.
const EXIT_OK: u8 = 0;
/// A source could not be read or sealed (or a trail not shut down): some
/// lines are not sealed yet; the next run retries from the last commit.
const EXIT_SOURCE_FAILED: u8 = 1;
/// The command line or the configuration is wrong (clap's own status for
/// usage errors too).
const EXIT_CONFIG: u8 = 2;
/// Another instance is sealing into the same database.
const EXIT_LOCKED: u8 = 3;
/// The service could not start: the database, the sealing key or the
/// metrics address.
const EXIT_START: u8 = 4;

/// Seal server log files into tamper-evident trails.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Follow every source until SIGTERM or SIGINT, then seal what was
    /// read, shut the trails down and exit.
    Run(ConfigArg),
    /// Seal everything new in every source, then exit (for cron).
    Once(ConfigArg),
    /// Create the sealing key, and the verification key to be taken
    /// offline.
    Keygen {
        #[command(flatten)]
        config: ConfigArg,
        /// Where to write the verification key (default: `verification_key`
        /// of the configuration).
        #[arg(long, value_name = "FILE")]
        verification_key: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
struct ConfigArg {
    /// The configuration file (TOML).
    #[arg(
        long,
        short,
        value_name = "FILE",
        default_value = "/etc/trailseal/ingest.toml"
    )]
    config: PathBuf,
}

/// Why the tool stops early, with the exit status that says so.
struct Failure {
    status: u8,
    message: String,
}

impl Failure {
    fn new(status: u8, message: impl std::fmt::Display) -> Self {
        Self {
            status,
            message: message.to_string(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            error!("starting the runtime failed: {err}");
            return ExitCode::from(EXIT_START);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => serve(&args.config, Mode::Run).await,
            Command::Once(args) => serve(&args.config, Mode::Once).await,
            Command::Keygen {
                config,
                verification_key,
            } => keygen(&config.config, verification_key),
        }
    });
    match result {
        Ok(status) => ExitCode::from(status),
        Err(failure) => {
            error!("{}", failure.message);
            ExitCode::from(failure.status)
        }
    }
}

/// Log lines to stderr: journald stores them under a systemd unit (and
/// stamps them itself), a terminal gets colour. `TRAILSEAL_LOG` filters
/// (`debug`, `trailseal_ingest=debug,info`, …; default `info`).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRAILSEAL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // systemd sets JOURNAL_STREAM when stderr goes to the journal.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

fn load(path: &std::path::Path) -> Result<Config, Failure> {
    Config::load(path).map_err(|err| Failure::new(EXIT_CONFIG, err))
}

fn keygen(config: &std::path::Path, verification: Option<PathBuf>) -> Result<u8, Failure> {
    let config = load(config)?;
    let verification = verification
        .or(config.verification_key)
        .ok_or_else(|| Failure::new(EXIT_CONFIG, keys::KeysError::NoVerificationPath))?;
    let key_id = keys::keygen(
        &config.sealing_key,
        &verification,
        Utc::now(),
        config.epoch_seconds,
    )
    .map_err(|err| Failure::new(EXIT_START, err))?;
    info!(
        key_id,
        sealing_key = %config.sealing_key.display(),
        verification_key = %verification.display(),
        "created the key pair; move the verification key offline: the service never needs it"
    );
    Ok(EXIT_OK)
}

async fn serve(config_path: &std::path::Path, mode: Mode) -> Result<u8, Failure> {
    let config = load(config_path)?;
    let sealing =
        keys::open_sealing_key(&config.sealing_key).map_err(|err| Failure::new(EXIT_START, err))?;
    // Locked before the database is opened: a new database is created and
    // migrated on opening, which two processes must not do at once.
    let lock_path = config
        .lock_file
        .clone()
        .or_else(|| database::default_lock_file(&config.database))
        .ok_or_else(|| Failure::new(EXIT_CONFIG, "lock_file is required"))?;
    if let Some(folder) = lock_path
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
    {
        std::fs::create_dir_all(folder)
            .map_err(|err| Failure::new(EXIT_START, format!("{}: {err}", folder.display())))?;
    }
    let lock = lock::acquire(&lock_path).map_err(|err| match err {
        lock::LockError::Held { .. } => Failure::new(EXIT_LOCKED, err),
        _ => Failure::new(EXIT_START, err),
    })?;
    let (stop_tx, stop) = watch::channel(false);
    let metrics = Arc::new(Metrics::default());
    let server = match config.metrics_listen {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .map_err(|err| {
                    Failure::new(EXIT_START, format!("metrics_listen {address}: {err}"))
                })?;
            // The address bound, not the one asked for: port 0 picks one.
            let address = listener.local_addr().unwrap_or(address);
            info!("metrics on http://{address}/metrics");
            let mut stopped = stop.clone();
            let shutdown = async move {
                let _ = stopped.wait_for(|stopped| *stopped).await;
            };
            Some(tokio::spawn(metrics::serve(
                listener,
                metrics.clone(),
                shutdown,
            )))
        }
        None => None,
    };
    // Opened last, so that a start that fails leaves nothing open.
    let database = Database::open(&config.database)
        .await
        .map_err(|err| Failure::new(EXIT_START, format!("opening the database failed: {err}")))?;
    let signals = tokio::spawn(stop_on_signal(stop_tx.clone()));

    info!(
        sources = config.sources.len(),
        mode = ?mode,
        lock = %lock_path.display(),
        "starting"
    );
    let service = Service::new(config, database.store(), sealing, metrics);
    let ok = service.run(mode, stop).await;
    let _ = stop_tx.send(true);
    signals.abort();
    if let Some(server) = server {
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => error!("the metrics endpoint failed: {err}"),
            Err(err) => error!("the metrics endpoint ended abnormally: {err}"),
        }
    }
    database.close().await;
    drop(lock);
    if ok {
        info!("stopped; every source sealed as far as it could be read");
        Ok(EXIT_OK)
    } else {
        error!("stopped; a source failed: its lines after the last commit are not sealed yet");
        Ok(EXIT_SOURCE_FAILED)
    }
}

/// Turns SIGTERM (systemd's stop) and SIGINT (Ctrl-C) into a stop.
async fn stop_on_signal(stop: watch::Sender<bool>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut terminate), Ok(mut interrupt)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            error!("cannot listen for SIGTERM and SIGINT");
            return;
        };
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        info!("{name}: sealing what was read, then stopping");
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        info!("interrupted: sealing what was read, then stopping");
    }
    let _ = stop.send(true);
}
