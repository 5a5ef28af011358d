//! `crafting-table parse` on saved logs: the real binary, real captured tool
//! output, JSON and SARIF out.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crafting-parsers/tests/fixtures").join(rel)
}

fn parse(args: &[&str], stdin: &[u8]) -> (i32, Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crafting-table"))
        .arg("parse")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (code, doc)
}

#[test]
fn a_mixed_rust_log_gives_each_lint_and_failed_test_once() {
    let log = std::fs::read(fixture("mixed/build_clippy_test.log")).unwrap();
    let (code, doc) =
        parse(&["--language", "rust", "--recipe", "lint", "--root", "/tmp/rfix/ws"], &log);
    assert_eq!(code, 0);
    let findings = doc.as_array().expect("a JSON array");
    let keys: Vec<(String, String, u64)> = findings
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_owned(),
                f["file"].as_str().unwrap_or("").to_owned(),
                f["line"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    for want in [
        ("clippy::needless_return", "app/src/main.rs", 15),
        ("clippy::ptr_arg", "util/src/lib.rs", 12),
        ("tests::it_fails", "util/src/lib.rs", 27),
    ] {
        assert!(
            keys.iter().any(|(c, f, l)| (c.as_str(), f.as_str(), *l) == want),
            "{want:?} missing from {keys:#?}"
        );
    }
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "a finding was reported twice");
    assert!(findings.iter().all(|f| f["fingerprint"].as_str().unwrap().len() == 16));
}

#[test]
fn an_unrecognised_failure_falls_back_to_recipe_fail() {
    let (code, doc) = parse(
        &["--language", "shell", "--recipe", "build", "--exit-code", "7"],
        b"make: *** [all] Error 7\n",
    );
    assert_eq!(code, 0);
    assert_eq!(doc.as_array().unwrap().len(), 1);
    assert_eq!(doc[0]["kind"], "recipe_fail");
    assert_eq!(doc[0]["code"], "exit_7");
}

#[test]
fn sarif_output_validates_against_the_schema() {
    let log = std::fs::read(fixture("clippy/workspace_all_targets.log")).unwrap();
    let (code, doc) = parse(
        &["--language", "rust", "--recipe", "lint", "--root", "/tmp/rfix/ws", "--format", "sarif"],
        &log,
    );
    assert_eq!(code, 0);
    assert_eq!(doc["version"], "2.1.0");
    let results = doc["runs"][0]["results"].as_array().unwrap();
    assert!(!results.is_empty());
    assert!(results.iter().all(|r| {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .is_some_and(|u| !u.starts_with('/'))
    }));
    let schema_path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/schemas/sarif-schema-2.1.0.json");
    let Ok(text) = std::fs::read_to_string(&schema_path) else {
        println!("schema check skipped: no SARIF schema at {}", schema_path.display());
        return;
    };
    let schema: Value = serde_json::from_str(&text).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn an_unreadable_log_file_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_crafting-table"))
        .args(["parse", "--language", "rust", "--recipe", "lint", "--log", "/nonexistent/log"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/log"));
}
