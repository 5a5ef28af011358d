//! Throughput and memory of one parse over a large clippy log.
//!
//! Writes a ~100 MB `cargo clippy --message-format=json` log to a temporary
//! file (real messages from the fixtures, spread over many files, each
//! printed twice as for a lib and a test target, with cargo's other
//! messages between them), parses it from the file with the default
//! registry, and prints MB/s and the process's peak resident memory.
//!
//! `cargo run --release -p crafting-parsers --example parse_bench [MEGABYTES [FILES [COPIES]]]`
//!
//! FILES (default 4000) bounds the number of distinct findings; COPIES
//! (default 2) is how many targets print each diagnostic.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::time::Instant;

use crafting_parsers::{ParseContext, Registry};

const FIXTURE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/clippy/workspace_all_targets.log");

/// Peak resident memory of this process in KiB, from /proc (Linux only).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> std::io::Result<()> {
    let arg = |i: usize, default: u64| -> u64 {
        std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(default)
    };
    let megabytes = arg(1, 100);
    let files = arg(2, 4000).max(1) as usize;
    let copies = arg(3, 2).max(1);
    let target = megabytes * 1_000_000;
    let templates: Vec<String> = BufReader::new(File::open(FIXTURE)?)
        .lines()
        .map_while(Result::ok)
        .filter(|l| l.starts_with('{'))
        .collect();
    let messages: Vec<&String> =
        templates.iter().filter(|l| l.contains(r#""reason":"compiler-message""#)).collect();
    let others: Vec<&String> =
        templates.iter().filter(|l| !l.contains(r#""reason":"compiler-message""#)).collect();

    // Write the log.
    let path = std::env::temp_dir().join(format!("parse_bench_{}.log", std::process::id()));
    let mut out = BufWriter::new(File::create(&path)?);
    let mut written = 0u64;
    let mut n = 0usize;
    while written < target {
        let file = format!("app/src/gen/m{}.rs", n % files);
        let message = messages[n % messages.len()]
            .replace("app/src/main.rs", &file)
            .replace("util/src/lib.rs", &file)
            .replace("app/src/helpers.rs", &file);
        for _ in 0..copies {
            out.write_all(message.as_bytes())?;
            out.write_all(b"\n")?;
            written += message.len() as u64 + 1;
        }
        if let Some(other) = others.get(n % others.len().max(1)) {
            out.write_all(other.as_bytes())?;
            out.write_all(b"\n    Checking app v0.1.0 (/tmp/rfix/ws/app)\n")?;
            written += other.len() as u64 + 42;
        }
        n += 1;
    }
    out.flush()?;
    drop(out);
    let before = peak_rss_kib();

    // Parse it.
    let ctx = ParseContext::new("rust", "lint", Some(0), "/tmp/rfix/ws", ".");
    let registry = Registry::with_defaults();
    let mut log = BufReader::with_capacity(256 * 1024, File::open(&path)?);
    let start = Instant::now();
    let findings = registry.parse(&ctx, &mut log);
    let seconds = start.elapsed().as_secs_f64();
    let after = peak_rss_kib();
    std::fs::remove_file(&path)?;

    let mb = written as f64 / 1_000_000.0;
    let raw_bytes: usize = findings
        .iter()
        .map(|f| f.message.len() + f.raw_json.as_ref().map_or(0, |r| r.to_string().len()))
        .sum();
    println!(
        "log: {mb:.1} MB, {} diagnostics printed, {} findings",
        copies as usize * n,
        findings.len()
    );
    println!("parse: {seconds:.2} s, {:.0} MB/s", mb / seconds);
    println!(
        "peak RSS: {} MiB before parsing, {} MiB after (findings' text and raw JSON: {:.1} MiB serialised)",
        before.map_or("?".to_owned(), |k| (k / 1024).to_string()),
        after.map_or("?".to_owned(), |k| (k / 1024).to_string()),
        raw_bytes as f64 / 1_048_576.0
    );
    Ok(())
}
