//! SARIF and JUnit reports in any language's log, and the registry's rules.

use std::io::BufRead;

use crafting_parsers::{Finding, Kind, ParseContext, Parser, Registry, Severity};

use crate::common::{check, check_findings, ctx, fixture, parse};

#[test]
fn eslint_sarif_formatter_output_is_read_with_file_uris() {
    let findings = check(
        "sarif/eslint.sarif.log",
        &ctx("javascript", "/tmp/jsproj", "."),
        "
        lint error eslint no-var @ src/app.js:1:1 | Unexpected var, use let or const instead.
        lint error eslint no-unused-vars @ src/app.js:1:5 | 'unusedThing' is assigned a value but never used.
        lint warn eslint prefer-const @ src/app.js:2:5 | 'name' is never reassigned. Use 'const' instead.
        lint error eslint eqeqeq @ src/app.js:3:10 | Expected '===' and instead saw '=='.
        lint warn eslint semi @ src/app.js:3:48 | Missing semicolon.
        lint error eslint no-unused-vars @ src/app.js:4:10 | 'f' is defined but never used.
        lint warn eslint semi @ src/app.js:4:25 | Missing semicolon.
        lint warn eslint prefer-const @ src/with space/file.js:1:5 | 'y' is never reassigned. Use 'const' instead.
        lint warn eslint semi @ src/with space/file.js:1:10 | Missing semicolon.
        lint warn eslint semi @ src/with space/file.js:2:15 | Missing semicolon.
        lint error eslint ESL0999 @ src/broken.js:1:12 | Parsing error: Unexpected token ;
        ",
    );
    assert_eq!(findings[0].raw_json.as_ref().expect("raw")["ruleIndex"], 0);
}

#[test]
fn eslint_json_and_sarif_in_one_log_are_not_doubled() {
    let mut log = fixture("eslint/json.log");
    log.extend(fixture("sarif/eslint.sarif.log"));
    let findings = parse(&ctx("typescript", "/tmp/jsproj", "."), &log);
    // Eleven from the JSON, plus the parse error the SARIF codes differently.
    assert_eq!(findings.len(), 12);
    // The JSON record had the fix, so it was kept.
    assert!(findings[0].suggested_fix.is_some());
}

#[test]
fn sarif_with_base_ids_default_levels_and_fixes_in_any_language() {
    let findings = check(
        "sarif/semgrep_style.sarif.log",
        &ctx("ruby", "/home/ci/checkout", "."),
        "
        lint warn semgrep-oss python.lang.security.audit.eval-detected @ app/handlers v2/run.py:14:5 | Detected the use of eval().
        lint info semgrep-oss python.lang.best-practice.open-never-closed @ app/io.py:3:- | file object opened without a close
        ",
    );
    assert_eq!(
        findings[0].suggested_fix.as_deref(),
        Some("use ast.literal_eval: replace 14:5 with `ast.literal_eval`")
    );
}

#[test]
fn junit_from_go_junit_report() {
    // Hand-written in go-junit-report's layout (the tool could not be installed here).
    let findings = check(
        "junit/go_junit_report.log",
        &ctx("go", "/r", "."),
        "
        test_fail error junit example.com/mod/pkg/util.TestAdd @ -:-:- | Failed
        test_fail error junit example.com/mod/pkg/util.TestPanics @ -:-:- | Runtime error
        ",
    );
    let text =
        findings[1].raw_json.as_ref().expect("raw")["text"].as_str().expect("text").to_owned();
    assert!(
        text.starts_with(
            "panic: runtime error: index out of range [3] with length 0 [recovered]\n"
        )
    );
}

#[test]
fn javascript_is_an_alias_of_typescript() {
    let log = fixture("tsc/plain.log");
    let ts = parse(&ctx("typescript", "/tmp/jsproj", "."), &log);
    let js = parse(&ctx("JavaScript", "/tmp/jsproj", "."), &log);
    assert_eq!(ts.len(), 6);
    assert_eq!(ts, js);
}

#[test]
fn each_language_reads_only_its_own_tools() {
    // A tsc log under python: no tsc parser, so the generic fallback.
    let findings = parse(&ctx("python", "/tmp/jsproj", "."), &fixture("tsc/plain.log"));
    check_findings(
        &findings,
        "recipe_fail error recipe exit_1 @ -:-:- | recipe `ci` failed (exit 1)",
    );
}

#[test]
fn fallback_only_when_nothing_was_found_and_the_exit_code_is_not_zero() {
    let ok = ParseContext::new("rust", "lint", Some(0), "/r", ".");
    assert!(Registry::with_defaults().parse(&ok, &mut &b"all good\n"[..]).is_empty());
    let killed = ParseContext::new("rust", "lint", None, "/r", ".");
    let findings = Registry::with_defaults().parse(&killed, &mut &b""[..]);
    check_findings(
        &findings,
        "recipe_fail error recipe exit_signal @ -:-:- | recipe `lint` failed (exit signal)",
    );
    // Findings explain the failure: no extra recipe_fail.
    let findings = parse(&ctx("rust", "/tmp/rfix/ws", "."), &fixture("cargo-test/workspace.log"));
    assert!(findings.iter().all(|f| f.kind == Kind::TestFail));
}

/// A whole-log parser of the kind a user might register: counts TODO lines.
struct TodoCounter;

impl Parser for TodoCounter {
    fn claims(&self, recipe: &str) -> bool {
        recipe == "todo"
    }

    fn parse(&self, _ctx: &ParseContext, log: &mut dyn BufRead) -> Vec<Finding> {
        let count = log.lines().map_while(Result::ok).filter(|l| l.contains("TODO")).count();
        vec![Finding::new(
            Kind::Lint,
            Severity::Info,
            "todo",
            "todo",
            format!("{count} TODO lines"),
        )]
    }
}

#[test]
fn registered_whole_log_parsers_run_beside_the_streaming_ones() {
    let mut registry = Registry::with_defaults();
    registry.register("rust", Box::new(TodoCounter));
    let log = [fixture("rustc/build_errors_macro.log"), b"TODO one\nTODO two\n".to_vec()].concat();
    let ctx = ParseContext::new("rust", "todo", Some(101), "/tmp/rfix/broken", ".");
    let findings = registry.parse(&ctx, &mut &log[..]);
    check_findings(
        &findings,
        "
        lint error rustc E0308 @ src/main.rs:9:5 | mismatched types
        lint error rustc E0308 @ src/main.rs:10:22 | mismatched types
        lint info todo todo @ -:-:- | 2 TODO lines
        ",
    );
    // A recipe the parser does not claim leaves it out.
    let other = ParseContext::new("rust", "build", Some(101), "/tmp/rfix/broken", ".");
    assert_eq!(registry.parse(&other, &mut &log[..]).len(), 2);
}

#[test]
fn an_empty_registry_only_has_the_fallback() {
    let findings = Registry::empty()
        .parse(&ctx("rust", "/tmp/rfix/ws", "."), &mut &fixture("cargo-test/workspace.log")[..]);
    check_findings(
        &findings,
        "recipe_fail error recipe exit_1 @ -:-:- | recipe `ci` failed (exit 1)",
    );
}
