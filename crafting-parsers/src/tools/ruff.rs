//! `ruff check --output-format=json`: one array of violations.
//!
//! Positions: `location.row` and `location.column` are 1-based, the column
//! counted in characters, as findings want. Codes are rule codes (`F401`);
//! syntax errors have no rule code in older releases (`null`, shown here as
//! `syntax-error`) and `invalid-syntax` in newer ones. Severity: the record's
//! own `severity` field where ruff prints one, else `error` for syntax errors
//! and `warn` for rule violations. Fixes come in two layouts: `fix.edits`
//! (current) and a single `fix.content` with `fix.location` (older releases);
//! both become `suggested_fix`, with the applicability kept in `raw_json`.

use serde::Deserialize;
use serde_json::Value;

use crate::finding::{Finding, Kind, Severity};
use crate::paths::PathMapper;
use crate::registry::{ParseContext, Session};

#[derive(Deserialize)]
struct Violation {
    #[serde(default)]
    code: Option<String>,
    message: String,
    filename: String,
    location: Location,
    #[serde(default)]
    fix: Option<Fix>,
    #[serde(default)]
    severity: Option<String>,
}

/// 1-based row and column (characters).
#[derive(Deserialize, Clone, Copy)]
struct Location {
    row: u32,
    column: u32,
}

#[derive(Deserialize)]
struct Fix {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    edits: Vec<Edit>,
    /// Older layout: one edit inline.
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    location: Option<Location>,
    #[serde(default)]
    end_location: Option<Location>,
}

#[derive(Deserialize)]
struct Edit {
    #[serde(default)]
    content: Option<String>,
    location: Location,
    end_location: Location,
}

/// Reads ruff's JSON arrays.
pub(crate) struct RuffSession {
    paths: PathMapper,
}

impl RuffSession {
    pub(crate) fn new(ctx: &ParseContext) -> Self {
        RuffSession { paths: PathMapper::new(ctx) }
    }

    fn convert(&self, raw: &Value) -> Option<Finding> {
        let v = Violation::deserialize(raw).ok()?;
        let file = self.paths.map(&v.filename)?;
        let code = match v.code.as_deref() {
            Some(c) if !c.is_empty() => c.to_owned(),
            _ => "syntax-error".to_owned(),
        };
        let syntax = code == "syntax-error" || code == "invalid-syntax" || code == "E999";
        let severity = match v.severity.as_deref() {
            Some("error") => Severity::Error,
            Some("warning") => Severity::Warn,
            Some("info") => Severity::Info,
            _ if syntax => Severity::Error,
            _ => Severity::Warn,
        };
        let fix = v.fix.as_ref().and_then(|fix| {
            let mut edits: Vec<String> = fix
                .edits
                .iter()
                .map(|e| describe(e.content.as_deref(), e.location, e.end_location))
                .collect();
            if let (Some(start), Some(end)) = (fix.location, fix.end_location) {
                edits.push(describe(fix.content.as_deref(), start, end));
            }
            if edits.is_empty() {
                return None;
            }
            let what = fix.message.clone().unwrap_or_else(|| "apply fix".to_owned());
            Some(format!("{what}: {}", edits.join("; ")))
        });
        Some(
            Finding::new(Kind::Lint, severity, "ruff", code, v.message)
                .at(Some(file), Some(v.location.row), Some(v.location.column))
                .with_fix(fix)
                .with_raw(raw.clone()),
        )
    }
}

fn describe(content: Option<&str>, start: Location, end: Location) -> String {
    let range = format!("{}:{}-{}:{}", start.row, start.column, end.row, end.column);
    match content {
        Some(c) if !c.is_empty() => format!("replace {range} with `{c}`"),
        _ => format!("delete {range}"),
    }
}

/// Whether an array element looks like a ruff violation.
fn is_violation(v: &Value) -> bool {
    v.get("filename").is_some() && v.get("location").is_some() && v.get("code").is_some()
}

impl Session for RuffSession {
    fn json(&mut self, doc: &Value, out: &mut Vec<Finding>) {
        let Some(items) = doc.as_array() else { return };
        if !items.first().is_some_and(is_violation) {
            return;
        }
        out.extend(items.iter().filter(|v| is_violation(v)).filter_map(|v| self.convert(v)));
    }
}
