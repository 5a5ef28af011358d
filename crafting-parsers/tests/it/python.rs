//! ruff, mypy, pytest and pip-audit.

use crate::common::{by_code, check, ctx};

const ROOT: &str = "/tmp/pyfix/proj";

#[test]
fn ruff_json_with_fixes_and_syntax_errors() {
    let findings = check(
        "ruff/check.log",
        &ctx("python", ROOT, "."),
        "
        lint error ruff F401 @ pkg/core.py:1:8 | `os` imported but unused
        lint error ruff F401 @ pkg/core.py:2:8 | `sys` imported but unused
        lint error ruff UP035 @ pkg/core.py:3:1 | `typing.List` is deprecated, use `list` instead
        lint error ruff F841 @ pkg/core.py:11:5 | Local variable `unused` is assigned to but never used
        lint error ruff F841 @ pkg/core.py:12:5 | Local variable `count` is assigned to but never used
        lint error ruff UP006 @ pkg/core.py:16:16 | Use `list` instead of `List` for type annotation
        lint error ruff E711 @ pkg/core.py:17:8 | Comparison to `None` should be `cond is None`
        lint error ruff invalid-syntax @ pkg/syntax_err.py:1:12 | Expected a parameter or the end of the parameter list
        lint error ruff invalid-syntax @ pkg/syntax_err.py:1:13 | Expected `)`, found newline
        lint error ruff F401 @ tests/test_broken import.py:1:8 | `does_not_exist` imported but unused
        ",
    );
    assert_eq!(
        by_code(&findings, "UP006").suggested_fix.as_deref(),
        Some("Replace with `list`: replace 16:16-16:20 with `list`")
    );
    assert_eq!(findings[3].raw_json.as_ref().expect("raw")["fix"]["applicability"], "unsafe");
    assert_eq!(by_code(&findings, "UP035").suggested_fix, None);
}

#[test]
fn ruff_older_layout_without_severity_and_with_inline_fix() {
    let log = r#"[
  {
    "code": "F401",
    "message": "`os` imported but unused",
    "fix": {"content": "", "message": "Remove unused import: `os`", "location": {"row": 1, "column": 1}, "end_location": {"row": 2, "column": 1}},
    "location": {"row": 1, "column": 8},
    "end_location": {"row": 1, "column": 10},
    "filename": "/r/app/a.py",
    "noqa_row": 1
  },
  {
    "code": null,
    "message": "SyntaxError: Unexpected token",
    "fix": null,
    "location": {"row": 3, "column": 1},
    "end_location": {"row": 3, "column": 2},
    "filename": "/r/app/b.py",
    "noqa_row": null
  }
]"#;
    let findings = crate::common::parse(&ctx("python", "/r", "app"), log.as_bytes());
    crate::common::check_findings(
        &findings,
        "
        lint warn ruff F401 @ app/a.py:1:8 | `os` imported but unused
        lint error ruff syntax-error @ app/b.py:3:1 | SyntaxError: Unexpected token
        ",
    );
    assert_eq!(
        findings[0].suggested_fix.as_deref(),
        Some("Remove unused import: `os`: delete 1:1-2:1")
    );
}

#[test]
fn mypy_json_columns_become_one_based() {
    let findings = check(
        "mypy/json.log",
        &ctx("python", ROOT, "."),
        r#"
        lint error mypy import-not-found @ tests/test_broken import.py:1:1 | Cannot find implementation or library stub for module named "does_not_exist"
        lint error mypy assignment @ pkg/core.py:12:18 | Incompatible types in assignment (expression has type "str", variable has type "int")
        lint error mypy operator @ pkg/core.py:13:29 | Unsupported operand types for + ("str" and "int")
        lint error mypy arg-type @ pkg/core.py:13:33 | Argument 1 to "add" has incompatible type "str"; expected "int"
        "#,
    );
    // The hint (mypy's note) follows the message.
    assert!(findings[0].message.ends_with("running_mypy.html#missing-imports"));
}

#[test]
fn mypy_text_with_columns_and_notes() {
    check(
        "mypy/text_columns.log",
        &ctx("python", ROOT, "."),
        r#"
        lint error mypy assignment @ pkg/core.py:12:18 | Incompatible types in assignment (expression has type "str", variable has type "int")
        lint error mypy operator @ pkg/core.py:13:29 | Unsupported operand types for + ("str" and "int")
        lint error mypy arg-type @ pkg/core.py:13:33 | Argument 1 to "add" has incompatible type "str"; expected "int"
        lint error mypy import-not-found @ tests/test_broken import.py:1:1 | Cannot find implementation or library stub for module named "does_not_exist"
        lint info mypy note @ tests/test_broken import.py:1:1 | See https://mypy.readthedocs.io/en/stable/running_mypy.html#missing-imports
        "#,
    );
}

#[test]
fn mypy_pretty_text_joins_wrapped_messages() {
    check(
        "mypy/text_pretty.log",
        &ctx("python", ROOT, "."),
        r#"
        lint error mypy assignment @ pkg/core.py:12:- | Incompatible types in assignment (expression has type "str", variable has type "int")
        lint error mypy operator @ pkg/core.py:13:- | Unsupported operand types for + ("str" and "int")
        lint error mypy arg-type @ pkg/core.py:13:- | Argument 1 to "add" has incompatible type "str"; expected "int"
        "#,
    );
}

#[test]
fn mypy_text_and_json_of_one_run_are_one_set_of_findings() {
    let mut log = crate::common::fixture("mypy/text_columns.log");
    log.extend(crate::common::fixture("mypy/json.log"));
    let findings = crate::common::parse(&ctx("python", ROOT, "."), &log);
    // Four errors (the JSON records, richer, win) and the text-only note.
    assert_eq!(findings.len(), 5);
    assert!(findings.iter().filter(|f| f.code != "note").all(|f| f.raw_json.is_some()));
}

#[test]
fn pytest_tb_line_pairs_summary_with_locations() {
    let findings = check(
        "pytest/tb_line.log",
        &ctx("python", ROOT, "."),
        "
        test_fail error pytest tests/test_core.py::test_add_param[2-2-5] @ tests/test_core.py:12:- | assert 4 == 5
        test_fail error pytest tests/test_core.py::TestThings::test_method @ tests/test_core.py:17:- | ValueError: bad value
        test_fail error pytest tests/test_broken import.py @ tests/test_broken import.py:-:- | error during collection
        ",
    );
    assert_eq!(findings[0].raw_json.as_ref().expect("raw")["outcome"], "failed");
}

#[test]
fn pytest_rootdir_below_the_work_dir_prefixes_node_ids() {
    // pytest ran from the repository root, its rootdir was `py/`.
    let log = "\
rootdir: /r/py
=========================== short test summary info ============================
FAILED tests/test_a.py::test_x - AssertionError: nope
";
    let findings = crate::common::parse(&ctx("python", "/r", "."), log.as_bytes());
    crate::common::check_findings(
        &findings,
        "test_fail error pytest tests/test_a.py::test_x @ py/tests/test_a.py:-:- | AssertionError: nope",
    );
}

#[test]
fn pytest_console_and_junit_report_are_merged() {
    let findings = check(
        "pytest/console_and_junit.log",
        &ctx("python", ROOT, "."),
        "
        test_fail error pytest tests/test_broken import.py @ tests/test_broken import.py:-:- | collection failure
        test_fail error pytest tests/test_core.py::test_add_param[2-2-5] @ tests/test_core.py:12:- | assert 4 == 5
        test_fail error pytest tests/test_core.py::TestThings::test_method @ tests/test_core.py:17:- | ValueError: bad value
        ",
    );
    assert_eq!(
        findings[2].raw_json.as_ref().expect("raw")["classname"],
        "tests.test_core.TestThings"
    );
}

#[test]
fn pip_audit_current_layout() {
    // Hand-written from pip-audit's JSON layout (its database is online).
    let findings = check(
        "pip-audit/current.log",
        &ctx("python", "/r", "."),
        "
        cve error pip-audit PYSEC-2019-179 @ -:-:- | flask 0.5: The Pallets Project Flask before 1.0 is affected by: unexpected memory usage.
        cve error pip-audit PYSEC-2018-66 @ -:-:- | flask 0.5: The Pallets Project flask version Before 0.12.3 contains a CWE-20 vulnerability.
        cve error pip-audit GHSA-h5c8-rqwp-cp95 @ -:-:- | jinja2 3.1.2: The `xmlattr` filter in affected versions of Jinja accepts keys containing spaces.
        ",
    );
    assert_eq!(findings[1].suggested_fix.as_deref(), Some("bump flask to 0.12.3"));
    let raw = findings[1].raw_json.as_ref().expect("raw");
    assert_eq!(raw["aliases"], serde_json::json!(["CVE-2018-1000656", "GHSA-562c-5r94-xh97"]));
}

#[test]
fn pip_audit_older_array_layout() {
    check(
        "pip-audit/older_array.log",
        &ctx("python", "/r", "."),
        "
        cve error pip-audit PYSEC-2019-179 @ -:-:- | flask 0.5: The Pallets Project Flask before 1.0 is affected by: unexpected memory usage.
        cve error pip-audit PYSEC-2018-66 @ -:-:- | flask 0.5: The Pallets Project flask version Before 0.12.3 contains a CWE-20 vulnerability.
        ",
    );
}

/// Where the subproject captures live: the recipe ran `cd pkg && pytest ...`
/// in the `py` subproject, so pytest's rootdir was `py/pkg`.
const SUB_ROOT: &str = "/tmp/pyfix-sub/repo";
const COLL_ROOT: &str = "/tmp/pyfix-coll/repo";

#[test]
fn pytest_quiet_tb_line_in_a_deeper_folder_infers_the_rootdir() {
    // `-q` prints no `rootdir:` header; the `--tb=line` locations are absolute.
    let findings = check(
        "pytest/subdir_tb_line_q.log",
        &ctx("python", SUB_ROOT, "py"),
        "
        test_fail error pytest tests/test_mod.py::test_x @ py/pkg/tests/test_mod.py:5:- | AssertionError: nope
        test_fail error pytest tests/test_mod.py::test_param[2-3] @ py/pkg/tests/test_mod.py:14:- | assert 2 == 3
        ",
    );
    assert_eq!(
        findings[1].raw_json.as_ref().expect("raw")["nodeid"],
        "tests/test_mod.py::test_param[2-3]"
    );
}

#[test]
fn pytest_default_output_in_a_deeper_folder_follows_the_rootdir_header() {
    check(
        "pytest/subdir_default.log",
        &ctx("python", SUB_ROOT, "py"),
        "
        test_fail error pytest tests/test_mod.py::test_x @ py/pkg/tests/test_mod.py:5:- | AssertionError: nope
        test_fail error pytest tests/test_mod.py::test_param[2-3] @ py/pkg/tests/test_mod.py:14:- | assert 2 == 3
        ",
    );
}

#[test]
fn pytest_collection_errors_name_the_rootdir_for_console_and_junit() {
    // `-q --tb=short`: frames are relative, only the collection errors print
    // absolute paths; the console and the JUnit report agree and merge.
    check(
        "pytest/subdir_collection_junit.log",
        &ctx("python", COLL_ROOT, "py"),
        "
        test_fail error pytest tests/test_broken.py @ py/pkg/tests/test_broken.py:-:- | collection failure
        test_fail error pytest tests/test_syntax.py @ py/pkg/tests/test_syntax.py:-:- | collection failure
        test_fail error pytest tests/test_mod.py::test_x @ py/pkg/tests/test_mod.py:5:- | AssertionError: nope
        test_fail error pytest tests/test_mod.py::test_param[2-3] @ py/pkg/tests/test_mod.py:14:- | assert 2 == 3
        ",
    );
}

#[test]
fn pytest_junit_report_alone_infers_the_rootdir() {
    let log = crate::common::fixture("pytest/subdir_collection_junit.log");
    let log = String::from_utf8(log).expect("utf-8");
    let xml = &log[log.find("<?xml").expect("report")..];
    let findings = crate::common::parse(&ctx("python", COLL_ROOT, "py"), xml.as_bytes());
    crate::common::check_findings(
        &findings,
        "
        test_fail error pytest tests/test_broken.py @ py/pkg/tests/test_broken.py:-:- | collection failure
        test_fail error pytest tests/test_syntax.py @ py/pkg/tests/test_syntax.py:-:- | collection failure
        test_fail error pytest tests/test_mod.py::test_x @ py/pkg/tests/test_mod.py:5:- | AssertionError: nope
        test_fail error pytest tests/test_mod.py::test_param[2-3] @ py/pkg/tests/test_mod.py:14:- | assert 2 == 3
        ",
    );
}

#[test]
fn pytest_tb_line_pairs_by_file_when_a_block_is_missing() {
    // The first failure's crash location could not be read (no `.py` path),
    // so blocks and failed tests disagree in number: pair by file and message.
    let log = "\
=================================== FAILURES ===================================
<string>:3: ValueError: from exec
/w/py/pkg/tests/test_b.py:9: assert 2 == 3
/w/py/pkg/tests/test_a.py:5: AssertionError: nope
=========================== short test summary info ============================
FAILED tests/test_a.py::test_exec - ValueError: from exec
FAILED tests/test_b.py::test_y - assert 2 == 3
FAILED tests/test_a.py::test_x - AssertionError: nope
";
    let findings = crate::common::parse(&ctx("python", "/w", "py"), log.as_bytes());
    crate::common::check_findings(
        &findings,
        "
        test_fail error pytest tests/test_a.py::test_exec @ py/pkg/tests/test_a.py:-:- | ValueError: from exec
        test_fail error pytest tests/test_b.py::test_y @ py/pkg/tests/test_b.py:9:- | assert 2 == 3
        test_fail error pytest tests/test_a.py::test_x @ py/pkg/tests/test_a.py:5:- | AssertionError: nope
        ",
    );
}

#[test]
fn pytest_without_header_or_absolute_paths_falls_back_to_the_work_dir() {
    let log = "\
=========================== short test summary info ============================
FAILED tests/test_a.py::test_x - AssertionError: nope
";
    let findings = crate::common::parse(&ctx("python", "/w", "py"), log.as_bytes());
    crate::common::check_findings(
        &findings,
        "test_fail error pytest tests/test_a.py::test_x @ py/tests/test_a.py:-:- | AssertionError: nope",
    );
}
