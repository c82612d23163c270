//! Records an hour of a hosting control panel into a SQLite trail, prints
//! it, and verifies it.
//!
//! ```sh
//! cargo run --example quickstart
//! cargo run --example quickstart -- --database sqlite://trailseal-data/trail.db \
//!     --keys trailseal-data/keys --events 100000
//! ```
//!
//! The database and the key folder are created on the first run and reused
//! afterwards: the first run records the last hour, every later run the
//! time since the run before (at most an hour), onto the same trails, never
//! ahead of the clock. The hour runs on a simulated clock, so it takes no
//! longer than the writing does.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use clap::Parser;
use futures_util::StreamExt;
use trailseal::{
    Actor, Entry, Event, ManualClock, Query, Receipt, SealingKey, SqliteStore, Store, Trail,
    VerificationKey, Verifier,
    event::Source,
    read::{Language, render},
    seal::{DEFAULT_EPOCH_SECONDS, SEALING_KEY_FILE, VERIFICATION_KEY_FILE},
    store::SqliteStoreOptions,
};

/// Record an hour of a hosting panel into a tamper-evident trail.
#[derive(Parser, Debug)]
struct Args {
    /// The SQLite database, as a URL or a path.
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
    /// How many events the hour holds.
    #[arg(long, value_name = "N", default_value_t = 60)]
    events: u64,
}

/// Sentences printed one by one; beyond this only a summary.
const PRINTED: u64 = 60;
/// Most events waiting for their commit at once: enough for the writers to
/// form large batches, far below their queue capacity.
const MAX_IN_FLIGHT: u64 = 1024;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let options = SqliteStoreOptions::from_url(&args.database)?;
    let store = open_store(options).await?;
    let hour_start = next_hour_start(&store).await?;
    let (sealing, verification) = open_keys(&args.keys, hour_start)?;
    let sealing = Arc::new(sealing);
    let clock = ManualClock::new(hour_start);

    let mut trails = Vec::new();
    for name in ["admin", "mailbox", "ftp", "php-mail"] {
        let trail = Trail::builder(name, Arc::new(store.clone()), sealing.clone())
            .clock(Arc::new(clock.clone()))
            .start()
            .await?;
        trails.push(trail);
    }
    // The hour up to now, or what is left of it after an earlier run: the
    // trail is never written ahead of the clock (a verifier would report
    // entries dated after its clock).
    let hour_end = Utc::now().max(hour_start + TimeDelta::seconds(1));
    println!(
        "Recording {} events from {} to {} UTC into {}\n",
        args.events,
        hour_start.format("%Y-%m-%d %H:%M:%S"),
        hour_end.format("%H:%M:%S"),
        store.path().display()
    );

    let span = (hour_end - hour_start)
        .num_microseconds()
        .unwrap_or(3_600_000_000);
    let step = TimeDelta::microseconds(span / args.events.max(1) as i64);
    let mut panel = Panel::new(hour_start.timestamp() as u64);
    let mut receipts = futures_util::stream::iter(0..args.events)
        .map(|_| {
            let next = panel.next_event();
            clock.advance(step);
            let trails = &trails;
            async move {
                let (index, event) = next?;
                trails[index].record(event).await
            }
        })
        // About a simulated minute's worth of events at once: a large hour
        // is written in batches, a small one event by event, each at its
        // own time.
        .buffered((args.events / 60).clamp(1, MAX_IN_FLIGHT) as usize);
    let mut recorded = 0u64;
    let mut first = Vec::new();
    while let Some(receipt) = receipts.next().await {
        let receipt = receipt?;
        if recorded < PRINTED {
            first.push(receipt);
        }
        recorded += 1;
    }
    drop(receipts);
    for receipt in &first {
        print_sentence(&store, receipt).await?;
    }
    if recorded > PRINTED {
        println!("  … and {} more events\n", recorded - PRINTED);
    }

    // Close the hour: seal every epoch that ended, then stop the writers.
    clock.set(hour_end);
    for trail in &trails {
        trail.seal_finished_epochs().await?;
        trail.shutdown().await?;
    }

    print_failed_logins(&store, hour_start).await?;

    let intact = match verification {
        Some(verification) => {
            println!("Verifying every trail in {}:\n", store.path().display());
            let reports = Verifier::new(verification).verify_store(&store).await?;
            for report in &reports {
                print!("{report}");
            }
            let intact = reports.iter().all(|report| report.is_intact());
            println!(
                "\n{}",
                if intact {
                    "Every trail is intact."
                } else {
                    "TAMPERING FOUND: see the findings above."
                }
            );
            intact
        }
        None => {
            println!(
                "{} is not in {} (it belongs offline): verify with it as below.",
                VERIFICATION_KEY_FILE,
                args.keys.display()
            );
            true
        }
    };
    store.close().await;
    println!(
        "\nTo check the file yourself, as an auditor would:\n\n    \
         cargo run --bin audit-verify -- verify --key {} sqlite://{}\n",
        args.keys.join(VERIFICATION_KEY_FILE).display(),
        store.path().display()
    );
    println!(
        "Keep {} offline: it proves the trail, and whoever holds it could forge one.",
        args.keys.join(VERIFICATION_KEY_FILE).display()
    );
    if !intact {
        std::process::exit(1);
    }
    Ok(())
}

async fn open_store(
    options: SqliteStoreOptions,
) -> Result<SqliteStore, Box<dyn std::error::Error>> {
    let store = options.clone().open().await;
    if let Err(trailseal::StoreError::Io { path, .. }) = &store
        && let Some(folder) = path.parent().filter(|folder| !folder.exists())
    {
        // First run: make the data folder, then try again.
        std::fs::create_dir_all(folder)?;
        return Ok(options.open().await?);
    }
    Ok(store?)
}

/// Where this run's hour starts: an hour ago on a first run, otherwise
/// right after the newest entry (or an hour ago, if that is later), so
/// that reruns extend the trails up to now.
async fn next_hour_start(store: &SqliteStore) -> Result<DateTime<Utc>, Box<dyn std::error::Error>> {
    let newest = store.query(&Query::new().newest_first().limit(1)).await?;
    let hour_ago = (Utc::now() - TimeDelta::hours(1)).duration_trunc(TimeDelta::minutes(1))?;
    Ok(match newest.entries.first() {
        Some(entry) => hour_ago.max(entry.recorded_at + TimeDelta::seconds(1)),
        None => hour_ago,
    })
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

/// Prints a stored entry as the English sentence `trailseal::read::render` makes
/// of it (every value escaped, so no field can break the line), with its
/// German sentence below.
async fn print_sentence(
    store: &SqliteStore,
    receipt: &Receipt,
) -> Result<(), Box<dyn std::error::Error>> {
    let Some(entry) = store
        .scan(&receipt.trail, receipt.seq)
        .next()
        .await
        .transpose()?
    else {
        return Ok(());
    };
    println!(
        "  {}  {:>8}#{:<5} {}",
        receipt.recorded_at.format("%H:%M:%S"),
        receipt.trail,
        receipt.seq,
        render(&entry, Language::English)
    );
    println!("  {:>25} {}", "", render(&entry, Language::German));
    Ok(())
}

async fn print_failed_logins(
    store: &SqliteStore,
    since: DateTime<Utc>,
) -> Result<(), Box<dyn std::error::Error>> {
    let page = store
        .query(
            &Query::new()
                .trail("mailbox")
                .action("mailbox.access")
                .failed()
                .since(since)
                .newest_first()
                .limit(5),
        )
        .await?;
    println!("\nThe latest failed mailbox logins of the hour (a query on the trail):");
    for entry in &page.entries {
        println!(
            "  {}  {} from {}: {}",
            entry.recorded_at.format("%H:%M:%S"),
            value(entry, "target.id"),
            value(entry, "context.ip"),
            value(entry, "outcome.reason")
        );
    }
    if page.entries.is_empty() {
        println!("  none");
    }
    println!();
    Ok(())
}

fn value<'a>(entry: &'a Entry, name: &str) -> std::borrow::Cow<'a, str> {
    trailseal::model::escape_text(entry.value(name).unwrap_or("-"))
}

/// A deterministic simulation of a small hosting panel's hour.
struct Panel {
    state: u64,
    serial: u64,
}

const CUSTOMERS: [&str; 5] = [
    "kunde123",
    "kunde204",
    "kunde311",
    "web-agentur",
    "praxis-lenz",
];
const DOMAINS: [&str; 5] = [
    "baeckerei-mueller.de",
    "zahnarzt-koeln.de",
    "fahrradladen.example",
    "agentur.example",
    "praxis-lenz.de",
];
const USER_AGENTS: [&str; 3] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/128.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15",
    "Thunderbird/128.3.0",
];

impl Panel {
    fn new(seed: u64) -> Self {
        Self {
            state: seed | 1,
            serial: seed % 1000,
        }
    }

    /// xorshift: reproducible without a dependency.
    fn roll(&mut self, below: u64) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state % below
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.roll(items.len() as u64) as usize]
    }

    fn ip(&mut self) -> IpAddr {
        if self.roll(4) == 0 {
            format!("2001:db8::{:x}", self.roll(0xffff))
                .parse()
                .unwrap_or(IpAddr::from([0; 4]))
        } else {
            IpAddr::from([198, 51, 100, self.roll(250) as u8 + 1])
        }
    }

    /// The next event and the index of its trail (admin, mailbox, ftp,
    /// php-mail).
    fn next_event(&mut self) -> Result<(usize, Event), trailseal::event::ValidationError> {
        self.serial += 1;
        let customer = self.pick(&CUSTOMERS);
        let domain = self.pick(&DOMAINS);
        let ip = self.ip();
        let request_id = format!("req-{:08x}", self.state as u32);
        let roll = self.roll(100);
        let built = match roll {
            0..=24 => (0, self.admin_event(customer, domain, ip, request_id)),
            25..=54 => (1, self.mailbox_login(customer, domain, ip)),
            55..=79 => (2, self.ftp_event(customer, ip)),
            _ => (3, self.php_mail(customer, domain)),
        };
        let (trail, builder) = built;
        Ok((trail, builder.build()?))
    }

    fn admin_event(
        &mut self,
        customer: &str,
        domain: &str,
        ip: IpAddr,
        request_id: String,
    ) -> trailseal::EventBuilder {
        let builder = |action: &'static str| {
            Event::builder(action)
                .actor(Actor::customer(customer))
                .tenant(customer)
                .ip(ip)
                .request_id(request_id.clone())
                .source(Source::Ui)
        };
        let serial = self.serial;
        let user_agent = self.pick(&USER_AGENTS);
        match self.roll(7) {
            0 => builder("session.login")
                .target("account", customer)
                .user_agent(user_agent),
            1 => builder("database.create").target("database", format!("db{serial}")),
            2 => builder("mailbox.create").target("mailbox", format!("info{serial}@{domain}")),
            3 => builder("dns.record.update")
                .target("dns_record", format!("www.{domain} A"))
                .change(
                    "value",
                    Some("198.51.100.7".into()),
                    Some("198.51.100.8".into()),
                ),
            4 => builder("ftp_account.create").target("ftp_account", format!("{customer}-deploy")),
            5 => builder("cron_job.create")
                .target("cron_job", format!("cron{serial}"))
                .meta("schedule", "*/15 * * * *"),
            _ => builder("mailbox.password_change")
                .impersonator(Actor::admin("support-anna"))
                .target("mailbox", format!("kontakt@{domain}")),
        }
    }

    fn mailbox_login(
        &mut self,
        customer: &str,
        domain: &str,
        ip: IpAddr,
    ) -> trailseal::EventBuilder {
        let mailbox = format!(
            "{}@{domain}",
            self.pick(&["info", "kontakt", "buchhaltung"])
        );
        let protocol = self.pick(&["imap", "pop3"]);
        let builder = Event::builder("mailbox.access")
            .actor(Actor::customer(mailbox.clone()))
            .tenant(customer)
            .target("mailbox", mailbox)
            .ip(ip)
            .meta("protocol", protocol)
            .source(Source::System);
        match self.roll(6) {
            0 => builder.failure("wrong password"),
            1 if self.roll(3) == 0 => builder.failure("account locked after 5 failed attempts"),
            _ => builder.meta("bytes", self.roll(5_000_000) as i64),
        }
    }

    fn ftp_event(&mut self, customer: &str, ip: IpAddr) -> trailseal::EventBuilder {
        let user = format!("{customer}-deploy");
        let file = format!(
            "/htdocs/{}",
            self.pick(&[
                "index.php",
                "wp-config.php",
                "images/logo.png",
                "shop/cart.php"
            ])
        );
        let builder = |action: &'static str| {
            Event::builder(action)
                .actor(Actor::customer(user.clone()))
                .tenant(customer)
                .ip(ip)
                .source(Source::System)
        };
        match self.roll(5) {
            0 if self.roll(2) == 0 => builder("ftp.login")
                .target("ftp_account", user.clone())
                .failure("wrong password"),
            0 | 1 => builder("ftp.login").target("ftp_account", user.clone()),
            2 => builder("ftp.download")
                .target("file", file)
                .meta("bytes", self.roll(800_000) as i64),
            _ => builder("ftp.upload")
                .target("file", file)
                .meta("bytes", self.roll(2_000_000) as i64),
        }
    }

    fn php_mail(&mut self, customer: &str, domain: &str) -> trailseal::EventBuilder {
        let script = format!(
            "/htdocs/{}",
            self.pick(&["contact.php", "newsletter/send.php", "shop/order-mail.php"])
        );
        let serial = self.serial;
        let recipient = self.pick(&[
            "kunde@example.org",
            "bestellung@example.net",
            "info@example.com",
        ]);
        Event::builder("php_mail.send")
            .actor(Actor::system(format!("php-{customer}")))
            .tenant(customer)
            .target("script", script)
            .meta("sender", format!("noreply@{domain}"))
            .meta("recipient", recipient)
            .meta(
                "message_id",
                format!("<{}.{}@{domain}>", serial, self.roll(1 << 30)),
            )
            .meta("x_mailer", "PHP/8.3.12")
    }
}
