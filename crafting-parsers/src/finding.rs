//! The common finding record every parser produces.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What sort of problem a finding reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A diagnostic from a linter, type checker or compiler.
    Lint,
    /// A known vulnerability in a dependency; `code` is the advisory id.
    Cve,
    /// A failed test; `code` is the test's name.
    TestFail,
    /// The recipe failed and no parser recognised why; `code` is `exit_<n>`.
    RecipeFail,
}

impl Kind {
    /// The snake_case name used in the ledger and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Lint => "lint",
            Kind::Cve => "cve",
            Kind::TestFail => "test_fail",
            Kind::RecipeFail => "recipe_fail",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "lint" => Kind::Lint,
            "cve" => Kind::Cve,
            "test_fail" => Kind::TestFail,
            "recipe_fail" => Kind::RecipeFail,
            _ => return None,
        })
    }
}

/// One ordered severity scale: `Critical > Error > Warn > Info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Informational: notes, help, style hints.
    Info,
    /// A warning.
    Warn,
    /// An error, a failed test or a failed recipe.
    Error,
    /// A vulnerability with a CVSS score of 9.0 or more.
    Critical,
}

impl Severity {
    /// The snake_case name used in the ledger and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s {
            "info" => Severity::Info,
            "warn" => Severity::Warn,
            "error" => Severity::Error,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }
}

/// One structured problem found in a job's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// What sort of problem this is.
    pub kind: Kind,
    /// How bad it is.
    pub severity: Severity,
    /// The tool that reported it (`clippy`, `ruff`, `cargo-test`, ...).
    pub tool: String,
    /// Path relative to the repository root, `/`-separated, when known.
    pub file: Option<String>,
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// 1-based column counted in characters, when known.
    pub column: Option<u32>,
    /// Rule id, test name, advisory id or `exit_<n>`.
    pub code: String,
    /// The tool's message, one or more lines.
    pub message: String,
    /// A fix the tool proposes, when it proposes one.
    pub suggested_fix: Option<String>,
    /// First 16 hex chars of sha256(`kind|file|line|code`).
    pub fingerprint: String,
    /// The tool's own record for this finding, when it printed one.
    pub raw_json: Option<serde_json::Value>,
}

impl Finding {
    /// A finding without a location; add one with [`Finding::at`].
    pub fn new(
        kind: Kind,
        severity: Severity,
        tool: &str,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Finding {
        let code = code.into();
        Finding {
            kind,
            severity,
            tool: tool.to_owned(),
            file: None,
            line: None,
            column: None,
            fingerprint: fingerprint(kind, None, None, &code),
            code,
            message: message.into(),
            suggested_fix: None,
            raw_json: None,
        }
    }

    /// Sets the location: a repository-relative file, a 1-based line and a
    /// 1-based character column. A line or column of 0 counts as unknown.
    pub fn at(mut self, file: Option<String>, line: Option<u32>, column: Option<u32>) -> Finding {
        self.file = file;
        self.line = line.filter(|l| *l > 0);
        self.column = if self.line.is_some() { column.filter(|c| *c > 0) } else { None };
        self.refresh_fingerprint();
        self
    }

    /// Sets the fix the tool proposes.
    pub fn with_fix(mut self, fix: Option<String>) -> Finding {
        self.suggested_fix = fix.filter(|f| !f.is_empty());
        self
    }

    /// Sets the tool's own record.
    pub fn with_raw(mut self, raw: serde_json::Value) -> Finding {
        self.raw_json = Some(raw);
        self
    }

    /// Recomputes `fingerprint` from the current kind, file, line and code.
    pub fn refresh_fingerprint(&mut self) {
        self.fingerprint = fingerprint(self.kind, self.file.as_deref(), self.line, &self.code);
    }
}

/// First 16 hex characters of sha256 over `kind|file|line|code`, with an empty
/// field for an unknown file or line. The message never takes part.
pub fn fingerprint(kind: Kind, file: Option<&str>, line: Option<u32>, code: &str) -> String {
    let line = line.map(|l| l.to_string()).unwrap_or_default();
    let input = format!("{}|{}|{}|{}", kind.as_str(), file.unwrap_or(""), line, code);
    let digest = Sha256::digest(input.as_bytes());
    hex::encode(&digest[..8])
}
