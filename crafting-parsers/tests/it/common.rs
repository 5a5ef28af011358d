//! Fixture loading and the `check` helper every parser test goes through.

use std::path::PathBuf;

use crafting_parsers::{Finding, ParseContext, Registry};

/// The folder holding captured tool output.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The bytes of one fixture, e.g. `clippy/worktree_a.log`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A context for a language, repository root and work dir, exit code 1.
pub fn ctx(language: &str, root: &str, work_dir: &str) -> ParseContext {
    ParseContext::new(language, "ci", Some(1), root, work_dir)
}

/// Parses bytes with the default registry.
pub fn parse(ctx: &ParseContext, log: &[u8]) -> Vec<Finding> {
    Registry::with_defaults().parse(ctx, &mut &log[..])
}

/// One finding on one line: kind, severity, tool, code, place and the first
/// line of the message.
pub fn render(f: &Finding) -> String {
    let opt = |v: Option<u32>| v.map_or("-".to_owned(), |n| n.to_string());
    format!(
        "{} {} {} {} @ {}:{}:{} | {}",
        f.kind.as_str(),
        f.severity.as_str(),
        f.tool,
        f.code,
        f.file.as_deref().unwrap_or("-"),
        opt(f.line),
        opt(f.column),
        f.message.lines().next().unwrap_or("")
    )
}

/// Compares rendered findings with the expected lines (blank lines and
/// surrounding spaces ignored) and checks every fingerprint.
pub fn check_findings(findings: &[Finding], expected: &str) {
    let actual: Vec<String> = findings.iter().map(render).collect();
    let wanted: Vec<&str> = expected.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    assert_eq!(actual, wanted, "\nactual findings:\n{}\n", actual.join("\n"));
    for f in findings {
        let again = crafting_parsers::fingerprint(f.kind, f.file.as_deref(), f.line, &f.code);
        assert_eq!(f.fingerprint, again, "stale fingerprint on {}", render(f));
    }
}

/// Parses a fixture and compares its findings with `expected`; returns them
/// for further checks.
pub fn check(name: &str, ctx: &ParseContext, expected: &str) -> Vec<Finding> {
    let findings = parse(ctx, &fixture(name));
    check_findings(&findings, expected);
    findings
}

/// The finding with `code`, which must exist.
pub fn by_code<'a>(findings: &'a [Finding], code: &str) -> &'a Finding {
    findings.iter().find(|f| f.code == code).unwrap_or_else(|| panic!("no finding {code}"))
}
