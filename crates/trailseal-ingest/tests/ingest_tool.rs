//! `trailseal-ingest once` (the cron way) on real log files, into a real
//! SQLite file and a real PostgreSQL database: every line sealed exactly
//! once, a rerun seals only what was appended since, `audit-verify` with
//! the offline verification key finds the trails intact, and the exit
//! status tells what went wrong.

#[path = "../../../tests/pg/mod.rs"]
mod pg;
#[path = "../../../tests/support/mod.rs"]
mod support;

mod harness;

use harness::{EXIT_CONFIG, EXIT_SOURCE_FAILED, EXIT_START, Setup, assert_success};

fn seals_resumes_and_verifies(setup: &Setup) {
    setup.keygen();
    // The service gets no verification key: it is kept offline.
    std::fs::rename(
        setup.verification_key(),
        setup.path("offline/kept-elsewhere.key"),
    )
    .unwrap();
    let output = setup.once();
    assert_success(&output);
    std::fs::rename(
        setup.path("offline/kept-elsewhere.key"),
        setup.verification_key(),
    )
    .unwrap();
    setup.assert_exactly_once(&[setup.web(), setup.mail()]);
    // Logs go to stderr, stdout stays empty for cron's mail.
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("sealed"), "{stderr}");
    // Not a terminal: no colours, no progress bar.
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\r'),
        "{stderr}"
    );

    let (code, trails) = setup.verify();
    assert_eq!(code, 0, "{trails:?}");
    let trail_names: Vec<&str> = trails.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(trail_names, ["mail", "web"]);

    // Two more lines in the web log: a rerun seals those two and nothing
    // else, and each trail grows by exactly what it sealed.
    setup.append_web_lines(2);
    assert_success(&setup.once());
    setup.assert_exactly_once(&[setup.web(), setup.mail()]);
    let (code, after) = setup.verify();
    assert_eq!(code, 0, "{after:?}");
    assert_eq!(after[0], trails[0], "the mail trail must not change");
    assert_eq!(
        after[1].1,
        trails[1].1 + 2,
        "the web trail grows by two lines"
    );
}

#[test]
fn once_into_sqlite() {
    let setup = Setup::sqlite();
    seals_resumes_and_verifies(&setup);
    // Client addresses and user names: the database is its owner's alone.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let file = setup.path("data/trail.db");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread")]
async fn once_into_postgres() {
    let url = pg::fresh_database().await;
    tokio::task::spawn_blocking(move || seals_resumes_and_verifies(&Setup::new(Some(&url))))
        .await
        .unwrap();
}

/// A file whose format cannot be told fails its source (status 1), and only
/// its source: the other files are sealed.
#[test]
fn an_unrecognisable_file_fails_its_source_only() {
    let setup = Setup::sqlite();
    std::fs::write(setup.path("odd.log"), "nothing any parser knows\nat all\n").unwrap();
    setup.configure(&format!(
        "\n[[source]]\npath = {:?}\n",
        setup.path("odd.log").display().to_string()
    ));
    setup.keygen();
    let output = setup.once();
    assert_eq!(output.status.code(), Some(EXIT_SOURCE_FAILED));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("format not recognised"), "{stderr}");
    setup.assert_exactly_once(&[setup.web(), setup.mail()]);
}

/// An empty file (just rotated) of format `auto` is no failure: it is
/// sealed once it has lines. So is a missing one, with a warning.
#[test]
fn an_empty_file_waits_for_its_first_lines() {
    let setup = Setup::sqlite();
    let text = std::fs::read_to_string(setup.web()).unwrap();
    std::fs::remove_file(setup.web()).unwrap();
    setup.keygen();
    let output = setup.once();
    assert_success(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no such file yet"), "{stderr}");
    std::fs::write(setup.web(), "").unwrap();
    let output = setup.once();
    assert_success(&output);
    assert!(!String::from_utf8_lossy(&output.stderr).contains("no such file yet"));
    setup.assert_exactly_once(&[setup.web(), setup.mail()]);
    assert!(
        !setup
            .sealed()
            .contains_key(&setup.web().display().to_string())
    );

    std::fs::write(setup.web(), text).unwrap();
    assert_success(&setup.once());
    setup.assert_exactly_once(&[setup.web(), setup.mail()]);
}

/// A glob names every live file that matches, also those that appear later.
#[test]
fn a_glob_follows_every_matching_file() {
    let setup = Setup::sqlite();
    std::fs::create_dir(setup.path("vhosts")).unwrap();
    let one = setup.path("vhosts/a.example.access.log");
    let two = setup.path("vhosts/b.example.access.log");
    std::fs::copy(setup.web(), &one).unwrap();
    setup.configure(&format!(
        "\n[[source]]\npath = {:?}\nformat = \"web\"\n",
        setup.path("vhosts/*.access.log").display().to_string()
    ));
    setup.keygen();
    let output = setup.once();
    assert_success(&output);
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("no such file yet"),
        "the glob matches a file"
    );
    setup.assert_exactly_once(std::slice::from_ref(&one));
    std::fs::copy(setup.web(), &two).unwrap();
    assert_success(&setup.once());
    setup.assert_exactly_once(&[one, two, setup.web(), setup.mail()]);
}

#[test]
fn start_failures_have_their_own_status() {
    let setup = Setup::sqlite();
    // No sealing key yet: the message says how to make one.
    let output = setup.once();
    assert_eq!(output.status.code(), Some(EXIT_START));
    assert!(String::from_utf8_lossy(&output.stderr).contains("trailseal-ingest keygen"));
    // Nothing was created before the key was found.
    assert!(!setup.path("data/trail.db").exists());

    // A key is never overwritten.
    setup.keygen();
    let output = setup.command("keygen").output().unwrap();
    assert_eq!(output.status.code(), Some(EXIT_START));
    assert!(String::from_utf8_lossy(&output.stderr).contains("never overwrites"));

    // The metrics address is taken: nothing is sealed.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    setup.configure(&format!(
        "metrics_listen = \"{}\"\n",
        taken.local_addr().unwrap()
    ));
    let output = setup.once();
    assert_eq!(output.status.code(), Some(EXIT_START));
    assert!(String::from_utf8_lossy(&output.stderr).contains("metrics_listen"));
    assert!(!setup.path("data/trail.db").exists());

    // A mistake in the configuration.
    std::fs::write(setup.config(), "database = \"x.db\"\n").unwrap();
    let output = setup.once();
    assert_eq!(output.status.code(), Some(EXIT_CONFIG));
    assert!(String::from_utf8_lossy(&output.stderr).contains("sealing_key"));
}
