//! Reading a JSON Lines export back: order, blocks decoded ahead, and the
//! errors of a damaged file.

use crate::support;

use chrono::TimeDelta;
use support::{Fixture, TRAIL, clone_key};
use trailseal::{
    Entry, StoreError, Verifier,
    read::{JsonLinesReader, export_json_lines},
};

/// More entries than a few of the reader's 1,024-line blocks.
const ENTRIES: usize = 3_000;

async fn exported() -> (Fixture, Vec<u8>) {
    let fixture = Fixture::new().await;
    fixture.record(ENTRIES, TimeDelta::seconds(1)).await;
    fixture.seal().await;
    let mut jsonl = Vec::new();
    export_json_lines(&fixture.store, &[], &mut jsonl)
        .await
        .unwrap();
    (fixture, jsonl)
}

/// The byte offset at which line `line` (from 1) starts.
fn line_start(jsonl: &[u8], line: usize) -> usize {
    jsonl
        .split_inclusive(|&byte| byte == b'\n')
        .take(line - 1)
        .map(<[u8]>::len)
        .sum()
}

#[tokio::test]
async fn an_export_reads_back_in_order_on_a_one_thread_pool() {
    let (fixture, jsonl) = exported().await;
    // The reader decodes blocks ahead on the pool its caller runs on;
    // waiting for them must not block that pool's only thread.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let read: Vec<Entry> = pool
        .install(|| JsonLinesReader::new(&jsonl[..]).collect::<Result<_, _>>())
        .unwrap();
    assert_eq!(read, fixture.entries());

    let verifier = Verifier::new(clone_key(&fixture.verification));
    let reports = pool
        .install(|| verifier.verify_entries(JsonLinesReader::new(&jsonl[..]), &[]))
        .unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].trail, TRAIL);
    assert!(reports[0].is_intact(), "{}", reports[0]);
    assert_eq!(reports[0].entries, fixture.entries().len() as u64);
}

#[tokio::test]
async fn a_damaged_line_in_a_later_block_is_named_after_the_entries_before_it() {
    let (fixture, mut jsonl) = exported().await;
    let damaged_line = 2_500;
    let start = line_start(&jsonl, damaged_line);
    jsonl[start] = b'x';
    let mut reader = JsonLinesReader::new(&jsonl[..]);
    let before: Vec<Entry> = reader
        .by_ref()
        .take(damaged_line - 1)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(before[..], fixture.entries()[..damaged_line - 1]);
    match reader.next() {
        Some(Err(StoreError::MalformedExport { line, .. })) => {
            assert_eq!(line, damaged_line as u64);
        }
        other => panic!("expected the damaged line, got {other:?}"),
    }
    // The lines after it still decode.
    assert_eq!(
        reader.next().unwrap().unwrap(),
        fixture.entries()[damaged_line]
    );
}

#[tokio::test]
async fn a_line_that_is_not_utf8_is_named_and_the_others_still_decode() {
    let (fixture, mut jsonl) = exported().await;
    let damaged_line = 3;
    let start = line_start(&jsonl, damaged_line);
    // Inside the line's first string: `{"trail":"…`.
    jsonl[start + 11] = 0xff;
    let decoded: Vec<_> = JsonLinesReader::new(&jsonl[..]).collect();
    let entries = fixture.entries();
    assert_eq!(decoded.len(), entries.len());
    for (index, item) in decoded.iter().enumerate() {
        match item {
            Err(StoreError::MalformedExport { line, reason }) => {
                assert_eq!(index + 1, damaged_line);
                assert_eq!(*line, damaged_line as u64);
                assert_eq!(reason, "not UTF-8 (byte 12)");
            }
            Ok(entry) => assert_eq!(*entry, entries[index]),
            Err(other) => panic!("unexpected error {other}"),
        }
    }
}
