//! `eslint -f json`: an array with one result per file.
//!
//! Severity 2 is `error`, 1 `warn`. A fatal message (a parse error) has no
//! rule: it is coded `parse-error` and is always an error. Positions: `line`
//! and `column` are 1-based; eslint counts columns in UTF-16 code units,
//! which equal characters except after astral-plane characters such as
//! emoji (not convertible without the source). `fix.range` holds 0-based
//! UTF-16 offsets into the file; the fix and any `suggestions` are kept in
//! `raw_json`, and an automatic `fix` becomes `suggested_fix`.

use serde::Deserialize;
use serde_json::Value;

use crate::finding::{Finding, Kind, Severity};
use crate::paths::PathMapper;
use crate::registry::{ParseContext, Session};

#[derive(Deserialize)]
struct FileResult {
    #[serde(rename = "filePath")]
    file_path: String,
    #[serde(default)]
    messages: Vec<Value>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(rename = "ruleId", default)]
    rule_id: Option<String>,
    #[serde(default)]
    severity: u8,
    #[serde(default)]
    message: String,
    #[serde(default)]
    line: Option<u32>,
    #[serde(default)]
    column: Option<u32>,
    #[serde(default)]
    fatal: bool,
    #[serde(default)]
    fix: Option<Fix>,
}

#[derive(Deserialize)]
struct Fix {
    range: (u64, u64),
    #[serde(default)]
    text: String,
}

/// Reads eslint's JSON arrays.
pub(crate) struct EslintSession {
    paths: PathMapper,
}

impl EslintSession {
    pub(crate) fn new(ctx: &ParseContext) -> Self {
        EslintSession { paths: PathMapper::new(ctx) }
    }
}

fn is_result(v: &Value) -> bool {
    v.get("filePath").is_some() && v.get("messages").is_some()
}

impl Session for EslintSession {
    fn json(&mut self, doc: &Value, out: &mut Vec<Finding>) {
        let Some(results) = doc.as_array() else { return };
        if !results.first().is_some_and(is_result) {
            return;
        }
        for result in results {
            let Ok(result) = FileResult::deserialize(result) else { continue };
            let Some(file) = self.paths.map(&result.file_path) else { continue };
            for raw in &result.messages {
                let Ok(m) = Message::deserialize(raw) else { continue };
                let severity = match (m.fatal, m.severity) {
                    (true, _) | (_, 2) => Severity::Error,
                    (_, 1) => Severity::Warn,
                    _ => Severity::Info,
                };
                let code = match (&m.rule_id, m.fatal) {
                    (Some(rule), _) if !rule.is_empty() => rule.clone(),
                    (_, true) => "parse-error".to_owned(),
                    _ => "eslint".to_owned(),
                };
                let fix = m.fix.as_ref().map(|f| {
                    let (start, end) = f.range;
                    if f.text.is_empty() {
                        format!("delete offsets {start}..{end}")
                    } else {
                        format!("replace offsets {start}..{end} with `{}`", f.text)
                    }
                });
                out.push(
                    Finding::new(Kind::Lint, severity, "eslint", code, m.message)
                        .at(Some(file.clone()), m.line, m.column)
                        .with_fix(fix)
                        .with_raw(raw.clone()),
                );
            }
        }
    }
}
