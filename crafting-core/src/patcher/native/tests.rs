//! Tests of native fixes: captured tool output from crafting-parsers'
//! fixtures with source files written to match it, and live runs of clippy
//! and ruff when they are installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crafting_parsers::{ParseContext, Registry, Severity};
use serde_json::json;

use super::*;
use crate::patcher::diff::{self as patch, DEFAULT_MAX_DIFF_BYTES};

/// The bytes of one of crafting-parsers' fixtures.
fn fixture(name: &str) -> Vec<u8> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../crafting-parsers/tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Parses a log the way the engine does.
fn parse(language: &str, root: &str, work_dir: &str, log: &[u8]) -> Vec<Finding> {
    let ctx = ParseContext::new(language, "ci", Some(1), root, work_dir);
    Registry::with_defaults().parse(&ctx, &mut &log[..])
}

/// The finding with `code` at `file:line`, which must exist.
fn find<'a>(findings: &'a [Finding], code: &str, file: &str, line: u32) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.code == code && f.file.as_deref() == Some(file) && f.line == Some(line))
        .unwrap_or_else(|| panic!("no finding {code} at {file}:{line}"))
}

fn files(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries.iter().map(|(p, c)| (p.to_string(), c.to_string())).collect()
}

/// Applies a fix's diff to a worktree holding `src` and returns the new
/// content of `path`.
fn applied(src: &BTreeMap<String, String>, fix: &NativeFix, path: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    for (p, c) in src {
        let full = dir.path().join(p);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::fs::write(full, c).expect("write");
    }
    patch::apply(&fix.diff, dir.path(), DEFAULT_MAX_DIFF_BYTES)
        .unwrap_or_else(|e| panic!("{e}\n{}", fix.diff));
    std::fs::read_to_string(dir.path().join(path)).expect("read back")
}

/// The fix for `finding`, which must exist, checked to change only `path`
/// and to apply cleanly; returns the new content.
fn fixed(
    finding: &Finding,
    subproject: &str,
    src: &BTreeMap<String, String>,
    path: &str,
) -> String {
    assert!(has_tool_fix(finding), "{} should have a tool fix", finding.code);
    let fix = tool_fix(finding, subproject, src)
        .unwrap_or_else(|| panic!("no fix for {} at {:?}", finding.code, finding.file));
    assert_eq!(fix.files, [path]);
    applied(src, &fix, path)
}

// ---------------------------------------------------------------------------
// clippy and rustc, from clippy/workspace_all_targets.log (/tmp/rfix/ws)

/// `app/src/main.rs` as the fixture saw it: `return 42;` at byte 182.
const MAIN_RS: &str = r#"mod helpers;

use util::twice;

/// Doubles a number.
fn double(x: i32) -> i32 {
    x * 2
}

#[allow(dead_code)]
const SEVEN: i32 = 7;

/// The answer, 42.
fn answer() -> i32 {
    return 42;
}

fn main() {
    let unused = 3;
    let v = vec![1, 2, 3];
    println!("{} {} {}", answer(), twice(2), v.len() == 0);
    helpers::greet("x");
}
"#;

/// `app/src/helpers.rs`: `format!` at byte 39, `.clone()` at byte 76.
const HELPERS_RS: &str = r#"pub fn greet(name: &str) {
    let s = format!("{}", "héllo"); let n = name.clone();
    println!("{s} {n}");
}
"#;

const LIB_RS: &str = r#"//! Small helper.

/// Twice `x`.
pub fn twice(x: i32) -> i32 {
    x * 2
}

/// One more than its input.
pub fn next(x: i32) -> i32 {
    x + 1
}
pub fn is_empty(v: &Vec<i32>) -> bool {
    v.is_empty()
}
"#;

fn rust_sources() -> BTreeMap<String, String> {
    files(&[
        ("app/src/main.rs", MAIN_RS),
        ("app/src/helpers.rs", HELPERS_RS),
        ("util/src/lib.rs", LIB_RS),
    ])
}

fn clippy_findings() -> Vec<Finding> {
    parse("rust", "/tmp/rfix/ws", ".", &fixture("clippy/workspace_all_targets.log"))
}

#[test]
fn the_handwritten_sources_match_the_fixture_offsets() {
    assert_eq!(&MAIN_RS[182..192], "return 42;");
    assert_eq!(&MAIN_RS[216..222], "unused");
    assert_eq!(&MAIN_RS[240..253], "vec![1, 2, 3]");
    assert_eq!(&MAIN_RS[300..312], "v.len() == 0");
    assert_eq!(&HELPERS_RS[39..62], r#"format!("{}", "héllo")"#);
    assert_eq!(&HELPERS_RS[76..84], ".clone()");
    assert_eq!(&LIB_RS[166..175], "&Vec<i32>");
}

#[test]
fn clippy_machine_applicable_suggestions_become_diffs() {
    let findings = clippy_findings();
    let src = rust_sources();
    let main = |code: &str, line: u32| {
        fixed(find(&findings, code, "app/src/main.rs", line), ".", &src, "app/src/main.rs")
    };
    assert_eq!(
        main("clippy::needless_return", 15),
        MAIN_RS.replace("    return 42;\n", "    42\n")
    );
    assert_eq!(main("clippy::len_zero", 21), MAIN_RS.replace("v.len() == 0", "v.is_empty()"));
    assert_eq!(main("clippy::useless_vec", 20), MAIN_RS.replace("vec![1, 2, 3]", "[1, 2, 3]"));
    // rustc's own lints carry machine-applicable fixes too.
    assert_eq!(main("unused_variables", 19), MAIN_RS.replace("let unused", "let _unused"));

    let helpers = |code: &str| {
        fixed(find(&findings, code, "app/src/helpers.rs", 2), ".", &src, "app/src/helpers.rs")
    };
    assert_eq!(
        helpers("clippy::useless_format"),
        HELPERS_RS.replace(r#"format!("{}", "héllo")"#, r#""héllo".to_string()"#)
    );
    assert_eq!(helpers("noop_method_call"), HELPERS_RS.replace("name.clone()", "name"));
}

#[test]
fn clippy_explanation_names_tool_rule_and_change() {
    let findings = clippy_findings();
    let ret = find(&findings, "clippy::needless_return", "app/src/main.rs", 15);
    let fix = tool_fix(ret, ".", &rust_sources()).expect("fix");
    assert_eq!(
        fix.explanation,
        "Applies clippy's machine-applicable suggestion for `clippy::needless_return`: remove `return`."
    );
    assert!(
        fix.diff.starts_with("diff --git a/app/src/main.rs b/app/src/main.rs\n"),
        "{}",
        fix.diff
    );
}

#[test]
fn suggestions_that_are_not_machine_applicable_give_no_fix() {
    let findings = clippy_findings();
    let ptr = find(&findings, "clippy::ptr_arg", "util/src/lib.rs", 12);
    assert!(!has_tool_fix(ptr));
    assert_eq!(tool_fix(ptr, ".", &rust_sources()), None);
}

#[test]
fn clippy_run_from_a_member_folder_fixes_the_same_file() {
    let findings = parse("rust", "/tmp/wt-a/repo", "app", &fixture("clippy/worktree_a.log"));
    let ret = find(&findings, "clippy::needless_return", "app/src/main.rs", 15);
    let out = fixed(ret, "app", &rust_sources(), "app/src/main.rs");
    assert_eq!(out, MAIN_RS.replace("    return 42;\n", "    42\n"));
}

#[test]
fn a_file_that_changed_since_the_run_gives_no_fix() {
    let findings = clippy_findings();
    let ret = find(&findings, "clippy::needless_return", "app/src/main.rs", 15);
    let shifted = files(&[("app/src/main.rs", &format!("// new first line\n{MAIN_RS}"))]);
    assert_eq!(tool_fix(ret, ".", &shifted), None);
    let crlf = files(&[("app/src/main.rs", &MAIN_RS.replace('\n', "\r\n"))]);
    assert_eq!(tool_fix(ret, ".", &crlf), None);
    assert_eq!(tool_fix(ret, ".", &BTreeMap::new()), None);
}

/// A finding carrying a raw rustc diagnostic rather than the parser's record.
fn rustc_raw_finding(file_name: &str, applicability: &str) -> Finding {
    let span = json!({
        "file_name": file_name, "byte_start": 4, "byte_end": 5, "line_start": 1, "line_end": 1,
        "column_start": 5, "column_end": 6, "is_primary": true,
        "suggested_replacement": "_x", "suggestion_applicability": applicability,
    });
    let raw = json!({
        "message": {
            "message": "unused variable: `x`", "level": "warning",
            "code": {"code": "unused_variables"},
            "spans": [],
            "children": [{"message": "prefix it with an underscore", "level": "help", "spans": [span]}],
        }
    });
    Finding::new(Kind::Lint, Severity::Warn, "rustc", "unused_variables", "unused variable: `x`")
        .at(Some("crates/y/src/lib.rs".into()), Some(1), Some(5))
        .with_raw(raw)
}

#[test]
fn raw_rustc_spans_are_matched_through_the_subproject() {
    let src = files(&[("crates/y/src/lib.rs", "let x = 1;\n")]);
    let relative = rustc_raw_finding("src/lib.rs", "MachineApplicable");
    assert_eq!(fixed(&relative, "crates/y", &src, "crates/y/src/lib.rs"), "let _x = 1;\n");
    let absolute = rustc_raw_finding("/tmp/wt/repo/crates/y/src/lib.rs", "MachineApplicable");
    assert_eq!(fixed(&absolute, "crates/y", &src, "crates/y/src/lib.rs"), "let _x = 1;\n");
    // Relative to another folder: another file.
    assert_eq!(tool_fix(&relative, "crates/z", &src), None);
    let maybe = rustc_raw_finding("src/lib.rs", "MaybeIncorrect");
    assert!(!has_tool_fix(&maybe));
    assert_eq!(tool_fix(&maybe, "crates/y", &src), None);
}

#[test]
fn overlapping_edits_give_no_fix() {
    let edits = |list: &[(usize, usize, &str)]| {
        list.iter().map(|(s, e, t)| Edit { start: *s, end: *e, text: t.to_string() }).collect()
    };
    assert_eq!(apply_edits("abcdef", edits(&[(0, 3, "x"), (2, 4, "y")])), None);
    assert_eq!(apply_edits("abcdef", edits(&[(1, 1, "x"), (1, 1, "y")])), None);
    assert_eq!(apply_edits("abcdef", edits(&[(0, 9, "x")])), None);
    assert_eq!(apply_edits("é", edits(&[(1, 2, "x")])), None);
    // Adjacent edits and exact duplicates are fine.
    assert_eq!(
        apply_edits("abcdef", edits(&[(3, 4, "D"), (0, 3, "x"), (0, 3, "x")])).as_deref(),
        Some("xDef")
    );
}

// ---------------------------------------------------------------------------
// ruff, from ruff/check.log (/tmp/pyfix/proj)

/// `pkg/core.py` as the fixture saw it.
const CORE_PY: &str = r#"import os
import sys
from typing import List


def greet(name):
    return "hi " + name


def work():
    unused = 1
    count: int = "x"
    return 2


def add(items: List[int]) -> int:
    if None == items:
        return 0
    return sum(items)
"#;

fn ruff_sources() -> BTreeMap<String, String> {
    files(&[("pkg/core.py", CORE_PY), ("tests/test_broken import.py", "import does_not_exist\n")])
}

fn ruff_findings() -> Vec<Finding> {
    parse("python", "/tmp/pyfix/proj", ".", &fixture("ruff/check.log"))
}

#[test]
fn ruff_safe_fixes_become_diffs() {
    let findings = ruff_findings();
    let src = ruff_sources();
    let os = find(&findings, "F401", "pkg/core.py", 1);
    assert_eq!(fixed(os, ".", &src, "pkg/core.py"), CORE_PY.replacen("import os\n", "", 1));
    let list = find(&findings, "UP006", "pkg/core.py", 16);
    assert_eq!(
        fixed(list, ".", &src, "pkg/core.py"),
        CORE_PY.replace("items: List[int]", "items: list[int]")
    );
    let spaced = find(&findings, "F401", "tests/test_broken import.py", 1);
    assert_eq!(fixed(spaced, ".", &src, "tests/test_broken import.py"), "");
    assert_eq!(
        tool_fix(os, ".", &src).expect("fix").explanation,
        "Applies ruff's safe fix for F401: Remove unused import: `os`."
    );
}

#[test]
fn ruff_unsafe_or_missing_fixes_are_left_to_agents() {
    let findings = ruff_findings();
    let src = ruff_sources();
    for (code, line) in [("F841", 11), ("F841", 12), ("E711", 17), ("UP035", 3)] {
        let f = find(&findings, code, "pkg/core.py", line);
        assert!(!has_tool_fix(f), "{code}");
        assert_eq!(tool_fix(f, ".", &src), None, "{code}");
    }
    let syntax = findings.iter().find(|f| f.code == "invalid-syntax").expect("syntax error");
    assert_eq!(tool_fix(syntax, ".", &src), None);
}

#[test]
fn ruff_older_inline_fix_layout_and_crlf_rows() {
    let raw = json!({
        "code": "F401", "message": "`os` imported but unused", "filename": "/r/a.py",
        "fix": {"content": "", "message": "Remove unused import: `os`",
                "location": {"row": 1, "column": 1}, "end_location": {"row": 2, "column": 1}},
        "location": {"row": 1, "column": 8}, "end_location": {"row": 1, "column": 10},
    });
    let f = Finding::new(Kind::Lint, Severity::Warn, "ruff", "F401", "`os` imported but unused")
        .at(Some("a.py".into()), Some(1), Some(8))
        .with_raw(raw);
    let src = files(&[("a.py", "import os\r\nimport sys\r\n")]);
    assert_eq!(fixed(&f, ".", &src, "a.py"), "import sys\r\n");
}

#[test]
fn ruff_columns_count_characters() {
    let raw = json!({
        "code": "UP006", "message": "Use `list`", "filename": "/r/a.py", "cell": null,
        "fix": {"applicability": "safe", "message": "Replace with `list`", "edits": [
            {"content": "list", "location": {"row": 2, "column": 10}, "end_location": {"row": 2, "column": 14}}]},
        "location": {"row": 2, "column": 10}, "end_location": {"row": 2, "column": 14},
    });
    let f = Finding::new(Kind::Lint, Severity::Warn, "ruff", "UP006", "Use `list`")
        .at(Some("a.py".into()), Some(2), Some(10))
        .with_raw(raw);
    let src = files(&[("a.py", "# é\nx: \"ü\" | List[int]\n")]);
    assert_eq!(fixed(&f, ".", &src, "a.py"), "# é\nx: \"ü\" | list[int]\n");
    // A row past the end gives no fix.
    let short = files(&[("a.py", "# é\n")]);
    assert_eq!(tool_fix(&f, ".", &short), None);
}

// ---------------------------------------------------------------------------
// eslint, from eslint/json.log (/tmp/jsproj)

/// `src/app.js` as eslint printed it in the fixture's `source` field.
const APP_JS: &str = "var unusedThing = 1;\nlet name = \"wörld\";\nif (name == \"x\") { console.log(\"héllo \" + name) }\nfunction f(a) { return a }\n";

fn eslint_sources() -> BTreeMap<String, String> {
    files(&[("src/app.js", APP_JS), ("src/with space/file.js", "let y = 2\nconsole.log(y)\n")])
}

#[test]
fn the_app_source_is_the_one_in_the_fixture() {
    let log: serde_json::Value = serde_json::from_slice(&fixture("eslint/json.log")).expect("json");
    assert_eq!(log[0]["source"], APP_JS);
}

#[test]
fn eslint_fixes_use_utf16_offsets() {
    let findings = parse("javascript", "/tmp/jsproj", ".", &fixture("eslint/json.log"));
    let src = eslint_sources();
    let app = |code: &str, line: u32| {
        fixed(find(&findings, code, "src/app.js", line), ".", &src, "src/app.js")
    };
    assert_eq!(app("no-var", 1), APP_JS.replacen("var", "let", 1));
    assert_eq!(app("prefer-const", 2), APP_JS.replace("let name", "const name"));
    // After `é` and `ö`, UTF-16 offsets and byte offsets part ways.
    assert_eq!(app("semi", 3), APP_JS.replace("+ name) }", "+ name); }"));
    assert_eq!(app("semi", 4), APP_JS.replace("return a }", "return a; }"));
    let spaced = |line: u32| {
        let f = findings
            .iter()
            .find(|f| {
                f.file.as_deref() == Some("src/with space/file.js")
                    && f.line == Some(line)
                    && f.code == "semi"
            })
            .expect("semi");
        fixed(f, ".", &src, "src/with space/file.js")
    };
    assert_eq!(spaced(1), "let y = 2;\nconsole.log(y)\n");
    assert_eq!(spaced(2), "let y = 2\nconsole.log(y);\n");
    let var = find(&findings, "no-var", "src/app.js", 1);
    assert_eq!(
        tool_fix(var, ".", &src).expect("fix").explanation,
        "Applies eslint's automatic fix for no-var: Unexpected var, use let or const instead."
    );
}

#[test]
fn eslint_suggestions_and_parse_errors_give_no_fix() {
    let findings = parse("javascript", "/tmp/jsproj", ".", &fixture("eslint/json.log"));
    let src = eslint_sources();
    for (code, line) in [("no-unused-vars", 1), ("eqeqeq", 3), ("no-unused-vars", 4)] {
        let f = find(&findings, code, "src/app.js", line);
        assert!(!has_tool_fix(f), "{code}");
        assert_eq!(tool_fix(f, ".", &src), None, "{code}");
    }
    let broken = find(&findings, "parse-error", "src/broken.js", 1);
    assert_eq!(tool_fix(broken, ".", &src), None);
}

#[test]
fn utf16_offsets_inside_a_surrogate_pair_are_refused() {
    assert_eq!(utf16_to_byte("a😀b", 1), Some(1));
    assert_eq!(utf16_to_byte("a😀b", 2), None);
    assert_eq!(utf16_to_byte("a😀b", 3), Some(5));
    assert_eq!(utf16_to_byte("a😀b", 4), Some(6));
    assert_eq!(utf16_to_byte("a😀b", 5), None);
}

// ---------------------------------------------------------------------------
// pip-audit, from pip-audit/current.log

fn pip_findings() -> Vec<Finding> {
    parse("python", "/r", ".", &fixture("pip-audit/current.log"))
}

fn pip_finding(code: &str) -> Finding {
    pip_findings().into_iter().find(|f| f.code == code).unwrap_or_else(|| panic!("no {code}"))
}

const REQUIREMENTS: &str = "# web\nFlask[async] == 0.5 ; python_version >= \"3.8\"  # pinned\nJinja2==3.1.2\nrequests>=2.31\n";

#[test]
fn pip_audit_bumps_pins_in_every_requirements_file_in_reach() {
    let src = files(&[
        ("py/requirements.txt", REQUIREMENTS),
        ("py/requirements/dev.txt", "-r ../requirements.txt\nflask==0.5\n"),
        ("requirements-ci.txt", "flask==0.5\r\n"),
        ("other/requirements.txt", "flask==0.5\n"),
        ("py/setup.txt", "flask==0.5\n"),
    ]);
    let flask = pip_finding("PYSEC-2019-179");
    assert!(has_tool_fix(&flask));
    let fix = tool_fix(&flask, "py", &src).expect("fix");
    assert_eq!(
        fix.files,
        ["py/requirements.txt", "py/requirements/dev.txt", "requirements-ci.txt"]
    );
    assert_eq!(
        applied(&src, &fix, "py/requirements.txt"),
        "# web\nFlask[async] == 1.0 ; python_version >= \"3.8\"  # pinned\nJinja2==3.1.2\nrequests>=2.31\n"
    );
    assert_eq!(
        applied(&src, &fix, "py/requirements/dev.txt"),
        "-r ../requirements.txt\nflask==1.0\n"
    );
    assert_eq!(applied(&src, &fix, "requirements-ci.txt"), "flask==1.0\r\n");
    assert_eq!(applied(&src, &fix, "other/requirements.txt"), "flask==0.5\n");
    assert_eq!(
        fix.explanation,
        "Pins flask to 1.0 in py/requirements.txt, py/requirements/dev.txt, requirements-ci.txt \
         to fix PYSEC-2019-179 reported by pip-audit."
    );
    // The second advisory asks for the lower fixed version the parser chose.
    let older = tool_fix(&pip_finding("PYSEC-2018-66"), "py", &src).expect("fix");
    assert_eq!(
        applied(&src, &older, "py/requirements/dev.txt"),
        "-r ../requirements.txt\nflask==0.12.3\n"
    );
    let jinja = tool_fix(&pip_finding("GHSA-h5c8-rqwp-cp95"), ".", &src).expect("fix");
    assert!(applied(&src, &jinja, "py/requirements.txt").contains("\nJinja2==3.1.3\n"));
}

#[test]
fn package_names_compare_after_pep_503_normalisation() {
    let raw = json!({"package": "zope.interface", "version": "5.0", "id": "PYSEC-1", "fix_versions": ["5.1.1", "4.0"]});
    let finding =
        Finding::new(Kind::Cve, Severity::Error, "pip-audit", "PYSEC-1", "zope.interface 5.0")
            .with_raw(raw);
    let src = files(&[("requirements.txt", "Zope_Interface==5.0\nzope-interface-extra==5.0\n")]);
    // No `suggested_fix`: the lowest fix version not below 5.0 is taken.
    assert_eq!(
        fixed(&finding, ".", &src, "requirements.txt"),
        "Zope_Interface==5.1.1\nzope-interface-extra==5.0\n"
    );
    assert_eq!(normalise_name("Foo__Bar.-baz"), "foo-bar-baz");
}

#[test]
fn no_pip_fix_without_a_plain_pin() {
    let flask = pip_finding("PYSEC-2019-179");
    let cases = [
        ("flask>=0.5\n", "a range, not a pin"),
        ("flask==2.0\n", "already at a fixed version"),
        ("flask==0.5.*\n", "a wildcard"),
        ("# flask==0.5\n", "a comment"),
        ("flask==0.5 --hash=sha256:abc\n", "pinned with a hash"),
        ("flask==0.5 \\\n    --hash=sha256:abc\n", "hashes on the next line"),
    ];
    for (content, why) in cases {
        let src = files(&[("requirements.txt", content)]);
        assert_eq!(tool_fix(&flask, ".", &src), None, "{why}");
    }
    assert_eq!(tool_fix(&flask, ".", &BTreeMap::new()), None);
}

#[test]
fn other_ecosystems_have_no_native_fix_yet() {
    let cargo = parse("rust", "/r", ".", &fixture("cargo-audit/report.log"));
    let go = parse("go", "/r", ".", &fixture("govulncheck/stream.log"));
    let src = files(&[("Cargo.lock", ""), ("go.mod", "")]);
    assert!(!cargo.is_empty() && !go.is_empty());
    for f in cargo.iter().chain(&go) {
        assert!(!has_tool_fix(f), "{} {}", f.tool, f.code);
        assert_eq!(tool_fix(f, ".", &src), None);
    }
}

#[test]
fn requirements_files_in_reach_of_the_subproject() {
    assert!(is_requirements_file("requirements.txt", "."));
    assert!(is_requirements_file("a/b/requirements-dev.txt", "."));
    assert!(is_requirements_file("requirements.txt", "py/app"));
    assert!(is_requirements_file("py/requirements.txt", "py/app"));
    assert!(is_requirements_file("py/app/requirements/test.txt", "py/app"));
    assert!(is_requirements_file("requirements/base.txt", "py"));
    assert!(!is_requirements_file("js/requirements.txt", "py"));
    assert!(!is_requirements_file("py/app/constraints.txt", "py/app"));
    assert!(!is_requirements_file("py/app/requirements.in", "py/app"));
}

// ---------------------------------------------------------------------------
// Live runs

/// Files read from a folder on disk.
struct Dir(PathBuf);

impl Source for Dir {
    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.0.join(path)).ok()
    }

    fn list(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.0.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() && entry.file_name() != "target" {
                    stack.push(path);
                } else if path.is_file() {
                    let rel = path.strip_prefix(&self.0).expect("inside");
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        out
    }
}

/// Runs a command in `dir`; `None` when it cannot be started.
fn run(dir: &Path, program: &str, args: &[&str], env: &[(&str, &Path)]) -> Option<Vec<u8>> {
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().ok().map(|o| o.stdout)
}

/// Fixes findings one at a time, re-running the tool after each, until no
/// finding has a native fix; returns the codes fixed.
fn fix_until_clean(dir: &Path, language: &str, mut lint: impl FnMut() -> Vec<u8>) -> Vec<String> {
    let mut fixed_codes = Vec::new();
    for _ in 0..10 {
        let root = dir.to_str().expect("utf-8 path");
        let findings = parse(language, root, ".", &lint());
        let Some((finding, fix)) =
            findings.iter().find_map(|f| tool_fix(f, ".", &Dir(dir.to_path_buf())).map(|x| (f, x)))
        else {
            return fixed_codes;
        };
        patch::apply(&fix.diff, dir, DEFAULT_MAX_DIFF_BYTES)
            .unwrap_or_else(|e| panic!("{e}\n{}", fix.diff));
        fixed_codes.push(finding.code.clone());
    }
    panic!("fixes kept coming: {fixed_codes:?}");
}

#[test]
fn live_clippy_findings_disappear_once_fixed() {
    let probe = Command::new("cargo").args(["clippy", "--version"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: cargo clippy is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("src")).expect("mkdir");
    std::fs::write(
        root.join("Cargo.toml"),
        "[package]\nname = \"fixme\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .expect("write");
    let main = "fn answer() -> i32 {\n    return 42;\n}\n\nfn main() {\n    let v = vec![1, 2, 3];\n    let unused = 3;\n    println!(\"{} {}\", answer(), v.len() == 0);\n}\n";
    std::fs::write(root.join("src/main.rs"), main).expect("write");
    let target = root.join("target");
    let clippy = || {
        run(
            root,
            "cargo",
            &["clippy", "--quiet", "--message-format=json"],
            &[("CARGO_TARGET_DIR", &target)],
        )
        .expect("cargo runs")
    };
    let codes = fix_until_clean(root, "rust", clippy);
    for code in ["clippy::needless_return", "clippy::len_zero", "unused_variables"] {
        assert!(codes.iter().any(|c| c == code), "{code} not fixed: {codes:?}");
    }
    let left = parse("rust", root.to_str().expect("utf-8"), ".", &clippy());
    let left: Vec<&str> = left.iter().map(|f| f.code.as_str()).collect();
    for code in &codes {
        assert!(!left.contains(&code.as_str()), "{code} still reported: {left:?}");
    }
    let now = std::fs::read_to_string(root.join("src/main.rs")).expect("read");
    assert!(
        now.contains("    42\n") && now.contains("v.is_empty()") && now.contains("_unused"),
        "{now}"
    );
}

#[test]
fn live_ruff_findings_disappear_once_fixed() {
    let ruff = std::env::var_os("RUFF").map_or_else(|| PathBuf::from("ruff"), PathBuf::from);
    if !Command::new(&ruff).arg("--version").output().is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: ruff is not installed (put it on PATH or set RUFF)");
        return;
    }
    let ruff = ruff.to_str().expect("utf-8 path").to_owned();
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("pkg")).expect("mkdir");
    let source = "import os\nimport sys\nfrom typing import List\n\n\ndef total(items: List[int]) -> int:\n    print(sys.argv, \"é\")\n    return sum(items)\n";
    std::fs::write(root.join("pkg/core.py"), source).expect("write");
    let lint = || {
        run(
            root,
            &ruff,
            &[
                "check",
                "--isolated",
                "--no-cache",
                "--output-format=json",
                "--select",
                "F401,UP006",
                "--target-version",
                "py311",
                ".",
            ],
            &[],
        )
        .expect("ruff runs")
    };
    // Once `List` is gone from the annotation its import is unused too.
    let codes = fix_until_clean(root, "python", lint);
    assert_eq!(codes, ["F401", "UP006", "F401"], "fixed: {codes:?}");
    let left = parse("python", root.to_str().expect("utf-8"), ".", &lint());
    assert!(left.iter().all(|f| f.code != "F401" && f.code != "UP006"), "{left:?}");
    let now = std::fs::read_to_string(root.join("pkg/core.py")).expect("read");
    assert_eq!(
        now,
        "import sys\n\n\ndef total(items: list[int]) -> int:\n    print(sys.argv, \"é\")\n    return sum(items)\n"
    );
}
