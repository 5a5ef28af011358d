//! clippy, rustc, cargo test, cargo-nextest and cargo audit.

use serde_json::Value;

use crate::common::{by_code, check, ctx};

const WORKSPACE_LINTS: &str = "
    lint warn clippy clippy::ptr_arg @ util/src/lib.rs:12:20 | writing `&Vec` instead of `&[_]` involves a new object where a slice will do
    lint warn rustc unused_variables @ app/src/main.rs:19:9 | unused variable: `unused`
    lint warn clippy clippy::useless_format @ app/src/helpers.rs:2:13 | useless use of `format!`
    lint warn clippy clippy::needless_return @ app/src/main.rs:15:5 | unneeded `return` statement
    lint warn clippy clippy::len_zero @ app/src/main.rs:21:46 | length comparison to zero
    lint warn clippy clippy::useless_vec @ app/src/main.rs:20:13 | useless use of `vec!`
    lint warn rustc noop_method_call @ app/src/helpers.rs:2:49 | call to `.clone()` on a reference in this situation does nothing
";

#[test]
fn clippy_all_targets_in_a_workspace_reports_each_lint_once() {
    // Every lint is printed twice (lib and test targets): one finding each.
    let findings = check(
        "clippy/workspace_all_targets.log",
        &ctx("rust", "/tmp/rfix/ws", "."),
        WORKSPACE_LINTS,
    );
    let ret = by_code(&findings, "clippy::needless_return");
    assert_eq!(
        ret.suggested_fix.as_deref(),
        Some(
            "remove `return`: replace app/src/main.rs:15:5-15:14 with `42`; \
             delete app/src/main.rs:15:14-15:15"
        )
    );
    let raw = ret.raw_json.as_ref().expect("raw record");
    assert_eq!(raw["suggestions"][0]["applicability"], "MachineApplicable");
    // `return 42;` starts at byte 182 of app/src/main.rs.
    assert_eq!(raw["suggestions"][0]["byte_start"], Value::from(182));
    // `&[i32]` is only a maybe-incorrect suggestion: kept, not proposed.
    let ptr = by_code(&findings, "clippy::ptr_arg");
    assert_eq!(ptr.suggested_fix, None);
    assert_eq!(
        ptr.raw_json.as_ref().expect("raw")["suggestions"][0]["applicability"],
        "Unspecified"
    );
}

#[test]
fn clippy_in_a_repository_subfolder_keeps_the_prefix() {
    // The repository holds the cargo workspace under `ws/`.
    let findings = crate::common::parse(
        &ctx("rust", "/tmp/rfix", "ws"),
        &crate::common::fixture("clippy/workspace_all_targets.log"),
    );
    let files: Vec<&str> = findings.iter().filter_map(|f| f.file.as_deref()).collect();
    assert!(files.iter().all(|f| f.starts_with("ws/")), "{files:?}");
    assert_eq!(findings.len(), 7);
}

#[test]
fn clippy_run_from_a_member_folder_resolves_against_the_workspace_root() {
    // cargo ran in `app/`, yet rustc printed paths from the workspace root.
    check("clippy/worktree_a.log", &ctx("rust", "/tmp/wt-a/repo", "app"), WORKSPACE_LINTS);
}

#[test]
fn rustc_errors_inside_a_macro_point_at_the_call_site() {
    let findings = check(
        "rustc/build_errors_macro.log",
        &ctx("rust", "/tmp/rfix/broken", "."),
        "
        lint error rustc E0308 @ src/main.rs:9:5 | mismatched types
        lint error rustc E0308 @ src/main.rs:10:22 | mismatched types
        ",
    );
    assert_eq!(findings[0].raw_json.as_ref().expect("raw")["macros"][0], "set_count!");
}

#[test]
fn rustc_messages_about_other_crates_and_summaries_are_dropped() {
    let log = concat!(
        r#"{"reason":"compiler-message","package_id":"x","manifest_path":"/home/u/.cargo/registry/src/idx/dep-1.0.0/Cargo.toml","target":{"kind":["lib"],"name":"dep","src_path":"/home/u/.cargo/registry/src/idx/dep-1.0.0/src/lib.rs"},"message":{"rendered":"w","$message_type":"diagnostic","children":[],"code":{"code":"unused_imports","explanation":null},"level":"warning","message":"unused import","spans":[{"byte_end":5,"byte_start":1,"column_end":5,"column_start":1,"expansion":null,"file_name":"/home/u/.cargo/registry/src/idx/dep-1.0.0/src/lib.rs","is_primary":true,"label":null,"line_end":1,"line_start":1,"suggested_replacement":null,"suggestion_applicability":null,"text":[]}]}}"#,
        "\n",
        r#"{"reason":"compiler-message","package_id":"y","manifest_path":"/repo/Cargo.toml","target":{"kind":["lib"],"name":"y","src_path":"/repo/src/lib.rs"},"message":{"rendered":"warning: 2 warnings emitted","$message_type":"diagnostic","children":[],"code":null,"level":"warning","message":"2 warnings emitted","spans":[]}}"#,
        "\n",
        r#"{"$message_type":"diagnostic","message":"unused variable: `x`","code":{"code":"unused_variables","explanation":null},"level":"warning","spans":[{"file_name":"src/lib.rs","byte_start":10,"byte_end":11,"line_start":2,"line_end":2,"column_start":9,"column_end":10,"is_primary":true,"text":[],"label":null,"suggested_replacement":null,"suggestion_applicability":null,"expansion":null}],"children":[],"rendered":"warning"}"#,
        "\n"
    );
    let findings = crate::common::parse(&ctx("rust", "/repo", "crates/y"), log.as_bytes());
    crate::common::check_findings(
        &findings,
        "lint warn rustc unused_variables @ crates/y/src/lib.rs:2:9 | unused variable: `x`",
    );
}

#[test]
fn cargo_test_reports_unit_and_doc_test_failures_with_panic_locations() {
    let findings = check(
        "cargo-test/workspace.log",
        &ctx("rust", "/tmp/rfix/ws", "."),
        "
        test_fail error cargo-test tests::it_fails @ util/src/lib.rs:27:9 | assertion `left == right` failed: one and one
        test_fail error cargo-test tests::it_panics @ util/src/lib.rs:33:18 | index out of bounds: the len is 0 but the index is 3
        test_fail error cargo-test tests::plain_panic @ util/src/lib.rs:38:9 | boom
        test_fail error cargo-test util/src/lib.rs - add (line 5) @ util/src/lib.rs:5:1 | assertion `left == right` failed
        ",
    );
    // The whole panic message, without the backtrace that follows it.
    assert_eq!(
        findings[0].message,
        "assertion `left == right` failed: one and one\n  left: 2\n right: 3"
    );
    assert_eq!(findings[2].message, "boom\nsecond line");
}

#[test]
fn cargo_test_reads_the_older_panic_format() {
    let log = "\
running 2 tests
test tests::one ... FAILED
test tests::two ... FAILED

failures:

---- tests::one stdout ----
thread 'tests::one' panicked at 'assertion failed: `(left == right)`
  left: `1`,
 right: `2`', src/lib.rs:10:5
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace

---- tests::two stdout ----
thread 'tests::two' panicked at 'called `Option::unwrap()` on a `None` value', /rustc/abc/library/core/src/option.rs:935:21

failures:
    tests::one
    tests::two

test result: FAILED. 0 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out
";
    let findings = crate::common::parse(&ctx("rust", "/r", "."), log.as_bytes());
    crate::common::check_findings(
        &findings,
        "
        test_fail error cargo-test tests::one @ src/lib.rs:10:5 | assertion failed: `(left == right)`
        test_fail error cargo-test tests::two @ -:-:- | called `Option::unwrap()` on a `None` value
        ",
    );
    assert_eq!(
        findings[0].message,
        "assertion failed: `(left == right)`\n  left: `1`,\n right: `2`"
    );
}

#[test]
fn nextest_console_and_junit_report_give_one_finding_per_failed_test() {
    let findings = check(
        "nextest/run_and_junit.log",
        &ctx("rust", "/tmp/rfix/ws", "."),
        "
        test_fail error cargo-nextest tests::it_panics @ util/src/lib.rs:33:18 | index out of bounds: the len is 0 but the index is 3
        test_fail error cargo-nextest tests::it_fails @ util/src/lib.rs:27:9 | assertion `left == right` failed: one and one
        test_fail error cargo-nextest tests::plain_panic @ util/src/lib.rs:38:9 | boom
        ",
    );
    assert_eq!(findings[0].raw_json.as_ref().expect("raw")["classname"], "util");
}

#[test]
fn a_log_mixing_build_clippy_and_test_yields_all_three() {
    let findings = check(
        "mixed/build_clippy_test.log",
        &ctx("rust", "/tmp/rfix/ws", "."),
        &format!(
            "{WORKSPACE_LINTS}
            test_fail error cargo-test tests::it_fails @ util/src/lib.rs:27:9 | assertion `left == right` failed: one and one
            test_fail error cargo-test tests::it_panics @ util/src/lib.rs:33:18 | index out of bounds: the len is 0 but the index is 3
            test_fail error cargo-test tests::plain_panic @ util/src/lib.rs:38:9 | boom
            "
        ),
    );
    assert_eq!(findings.len(), 10);
}

#[test]
fn cargo_audit_maps_cvss_to_severity_and_proposes_bumps() {
    // Hand-written from cargo-audit's JSON layout (its database is online).
    let findings = check(
        "cargo-audit/report.log",
        &ctx("rust", "/r", "rust"),
        "
        cve critical cargo-audit RUSTSEC-2024-0001 @ rust/Cargo.lock:-:- | Buffer overflow in insert_many (smallvec-demo 1.6.0)
        cve error cargo-audit RUSTSEC-2023-0044 @ rust/Cargo.lock:-:- | `X509VerifyParamRef::set_host` buffer over-read (openssl-demo 0.10.50)
        cve warn cargo-audit RUSTSEC-2025-0009 @ rust/Cargo.lock:-:- | Some AES functions may panic when overflow checking is enabled (ring-demo 0.17.8)
        lint warn cargo-audit RUSTSEC-2021-0139 @ rust/Cargo.lock:-:- | ansi-term-demo 0.12.1 is unmaintained: ansi_term is Unmaintained
        lint warn cargo-audit yanked:futures-util-demo @ rust/Cargo.lock:-:- | futures-util-demo 0.3.7 is yanked
        ",
    );
    let fixes: Vec<_> = findings.iter().map(|f| f.suggested_fix.as_deref()).collect();
    assert_eq!(
        fixes,
        [
            Some("bump smallvec-demo to 1.6.1"),
            Some("bump openssl-demo to 0.10.55"),
            Some("bump ring-demo to 0.17.12"),
            None,
            None
        ]
    );
    assert_eq!(
        findings[0].raw_json.as_ref().expect("raw")["advisory"]["aliases"][0],
        "CVE-2024-1111"
    );
}
