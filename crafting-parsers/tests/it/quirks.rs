//! Logs as they come: colours, CRLF, Windows paths, spaces, absolute paths,
//! JSON between prose, cut-off and empty logs, huge lines.

use crate::common::{check_findings, ctx, fixture, parse};

const CLIPPY_LINE_PREFIX: &str = r#"{"reason":"compiler-message""#;

/// The first clippy JSON line of the workspace fixture.
fn one_clippy_line() -> String {
    let log = String::from_utf8(fixture("clippy/workspace_all_targets.log")).expect("utf-8");
    log.lines().find(|l| l.starts_with(CLIPPY_LINE_PREFIX)).expect("a message").to_owned()
}

#[test]
fn ansi_colour_codes_are_ignored() {
    let log = "\x1b[1m\x1b[31mFAILED\x1b[0m tests/test_a.py::test_x - \x1b[1massert 1 == 2\x1b[0m\n\
               \x1b[96msrc/a.ts\x1b[0m:\x1b[93m2\x1b[0m:\x1b[93m5\x1b[0m - \x1b[91merror\x1b[0m\x1b[90m TS2304: \x1b[0mCannot find name 'x'.\n";
    let py = parse(&ctx("python", "/r", "."), log.as_bytes());
    check_findings(
        &py,
        "test_fail error pytest tests/test_a.py::test_x @ tests/test_a.py:-:- | assert 1 == 2",
    );
    let ts = parse(&ctx("typescript", "/r", "."), log.as_bytes());
    check_findings(&ts, "lint error tsc TS2304 @ src/a.ts:2:5 | Cannot find name 'x'.");
}

#[test]
fn crlf_line_ends_are_ignored() {
    let log = String::from_utf8(fixture("go-vet/json.log")).expect("utf-8").replace('\n', "\r\n");
    let findings = parse(&ctx("go", "/tmp/gofix/mod", "."), log.as_bytes());
    assert_eq!(findings.len(), 6);
    let log = "test tests::a ... FAILED\r\n\r\n---- tests::a stdout ----\r\nthread 'tests::a' panicked at src/lib.rs:3:5:\r\nno\r\n\r\ntest result: FAILED. 0 passed; 1 failed\r\n";
    let findings = parse(&ctx("rust", "/r", "."), log.as_bytes());
    check_findings(&findings, "test_fail error cargo-test tests::a @ src/lib.rs:3:5 | no");
}

#[test]
fn windows_paths_with_drive_letters_and_backslashes() {
    let log = r#"[{"filePath":"C:\\ci\\repo\\web\\src\\a.js","messages":[{"ruleId":"semi","severity":1,"message":"Missing semicolon.","line":1,"column":9}]}]
src\b.ts(4,2): error TS1005: ';' expected.
"#;
    let findings = parse(&ctx("typescript", r"C:\ci\repo", "web"), log.as_bytes());
    check_findings(
        &findings,
        "
        lint warn eslint semi @ web/src/a.js:1:9 | Missing semicolon.
        lint error tsc TS1005 @ web/src/b.ts:4:2 | ';' expected.
        ",
    );
}

#[test]
fn paths_with_spaces_survive() {
    let log = "my dir/a file.py:3:1: error: Name \"x\" is not defined  [name-defined]\n";
    let findings = parse(&ctx("python", "/r", "py proj"), log.as_bytes());
    check_findings(
        &findings,
        "lint error mypy name-defined @ py proj/my dir/a file.py:3:1 | Name \"x\" is not defined",
    );
}

#[test]
fn absolute_paths_under_the_root_become_relative_and_others_are_dropped() {
    let log = "/work/repo/svc/a.py:1: error: boom  [misc]\n\
               /usr/lib/python3/site.py:9: error: not ours  [misc]\n\
               ../../outside.py:2: error: climbs out  [misc]\n";
    let findings = parse(&ctx("python", "/work/repo/", "svc"), log.as_bytes());
    check_findings(&findings, "lint error mypy misc @ svc/a.py:1:- | boom");
}

#[test]
fn json_documents_between_prose_and_glued_to_the_next_output() {
    // ruff prints its array without a final newline; the next command's
    // output continues on the same line.
    let ruff = String::from_utf8(fixture("ruff/check.log")).expect("utf-8");
    let log = format!(
        "$ ruff check --output-format=json .\n{ruff}FAILED tests/test_a.py::test_y - boom\n[1/3] not json\n{{ half a thought\nplain prose\n"
    );
    let findings = parse(&ctx("python", "/tmp/pyfix/proj", "."), log.as_bytes());
    assert_eq!(findings.len(), 11);
    let last = findings.last().expect("finding");
    assert_eq!(last.code, "tests/test_a.py::test_y");
}

#[test]
fn prose_that_opens_a_brace_does_not_swallow_later_findings() {
    let log =
        "{ this is not json\nsrc/a.ts(1,1): error TS1128: Declaration or statement expected.\n";
    let findings = parse(&ctx("typescript", "/r", "."), log.as_bytes());
    check_findings(
        &findings,
        "lint error tsc TS1128 @ src/a.ts:1:1 | Declaration or statement expected.",
    );
}

#[test]
fn a_log_cut_off_mid_line_keeps_what_was_complete() {
    let full = fixture("clippy/workspace_all_targets.log");
    // Cut inside the third line.
    let cut_at = full.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(1).map(|(i, _)| i + 40);
    let cut = &full[..cut_at.expect("three lines")];
    let findings = parse(&ctx("rust", "/tmp/rfix/ws", "."), cut);
    check_findings(
        &findings,
        "lint warn clippy clippy::ptr_arg @ util/src/lib.rs:12:20 | writing `&Vec` instead of `&[_]` involves a new object where a slice will do",
    );
    // A pretty-printed document cut off never appears; the prose before it does.
    let vuln = String::from_utf8(fixture("govulncheck/stream.log")).expect("utf-8");
    let cut = &vuln[..vuln.len() / 2];
    assert!(
        parse(&ctx("go", "/r", "."), cut.as_bytes())
            .iter()
            .all(|f| f.kind != crafting_parsers::Kind::Lint)
    );
}

#[test]
fn empty_logs_give_nothing_or_the_fallback() {
    for language in ["rust", "python", "go", "typescript", "javascript", "cobol"] {
        let mut ok = ctx(language, "/r", ".");
        ok.exit_code = Some(0);
        assert!(parse(&ok, b"").is_empty(), "{language}");
        let failed = parse(&ctx(language, "/r", "."), b"");
        assert_eq!(failed.len(), 1, "{language}");
        assert_eq!(failed[0].code, "exit_1");
    }
}

#[test]
fn megabyte_lines_are_read_whole() {
    // One clippy message whose rendered text is three megabytes long.
    let line = one_clippy_line();
    let padding = "x".repeat(3 * 1024 * 1024);
    let big = line.replacen(r#""rendered":""#, &format!(r#""rendered":"{padding}"#), 1);
    assert!(big.len() > 3 * 1024 * 1024);
    let log = format!("{}\nprose\n{big}\n", "y".repeat(2 * 1024 * 1024));
    let findings = parse(&ctx("rust", "/tmp/rfix/ws", "."), log.as_bytes());
    check_findings(
        &findings,
        "lint warn clippy clippy::ptr_arg @ util/src/lib.rs:12:20 | writing `&Vec` instead of `&[_]` involves a new object where a slice will do",
    );
}

#[test]
fn invalid_utf8_and_nul_bytes_are_tolerated() {
    let mut log = b"\xff\xfe\x00garbage\n".to_vec();
    log.extend(b"src/a.ts(1,1): error TS1005: \xe2\x80 ';' expected.\n");
    let findings = parse(&ctx("typescript", "/r", "."), &log);
    assert_eq!(findings.len(), 1);
    assert!(findings[0].message.contains('\u{fffd}'));
}
