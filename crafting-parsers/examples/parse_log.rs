//! Parses a log file and prints its findings, one JSON object per line.
//!
//! `cargo run -p crafting-parsers --example parse_log -- LANGUAGE REPO_ROOT WORK_DIR LOG [EXIT_CODE]`

use std::fs::File;
use std::io::BufReader;

use crafting_parsers::{ParseContext, Registry};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [language, root, work_dir, log, rest @ ..] = args.as_slice() else {
        eprintln!("usage: parse_log LANGUAGE REPO_ROOT WORK_DIR LOG [EXIT_CODE]");
        std::process::exit(2);
    };
    let exit_code = rest.first().and_then(|c| c.parse().ok()).or(Some(0));
    let file = match File::open(log) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cannot open {log}: {e}");
            std::process::exit(1);
        }
    };
    let ctx = ParseContext::new(language, "cli", exit_code, root, work_dir);
    for f in Registry::with_defaults().parse(&ctx, &mut BufReader::new(file)) {
        println!("{}", serde_json::to_string(&f).unwrap_or_default());
    }
}
