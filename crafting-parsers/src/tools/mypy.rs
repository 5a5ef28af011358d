//! mypy: `-O json` lines (mypy 1.11 and later) and the classic text form.
//!
//! JSON records carry a 1-based `line` and a 0-based `column`, moved here to
//! 1-based; text lines (`file:line: error: msg  [code]`, with
//! `--show-column-numbers` `file:line:col:`) already count columns from 1.
//! Both count characters. `error` maps to error, `note` to info (coded
//! `note`). A JSON record's `hint` (the notes attached to an error) is
//! appended to its message. `--pretty` wraps long messages over several lines
//! and puts the code on the last one; the pieces are joined back.

use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use crate::finding::{Finding, Kind, Severity};
use crate::paths::PathMapper;
use crate::registry::{ParseContext, Session};

static TEXT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(.+?):(\d+)(?::(\d+))?(?::\d+:\d+)?: (error|warning|note): (.*)$")
        .expect("valid regex")
});
static CODE_TAIL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(.*?)\s*\[([a-z][a-z0-9-]*)\]$").expect("valid regex"));

#[derive(Deserialize)]
struct Record {
    file: String,
    line: i64,
    /// 0-based; -1 when unknown.
    #[serde(default)]
    column: Option<i64>,
    message: String,
    #[serde(default)]
    hint: Option<String>,
    #[serde(default)]
    code: Option<String>,
    severity: String,
}

fn severity(level: &str) -> Severity {
    match level {
        "error" => Severity::Error,
        "warning" => Severity::Warn,
        _ => Severity::Info,
    }
}

/// A text diagnostic whose message may continue on the next lines.
struct Pending {
    file: Option<String>,
    line: u32,
    column: Option<u32>,
    level: String,
    message: String,
    code: Option<String>,
}

/// Reads mypy's JSON and text output.
pub(crate) struct MypySession {
    paths: PathMapper,
    pending: Option<Pending>,
}

impl MypySession {
    pub(crate) fn new(ctx: &ParseContext) -> Self {
        MypySession { paths: PathMapper::new(ctx), pending: None }
    }

    fn flush(&mut self, out: &mut Vec<Finding>) {
        let Some(p) = self.pending.take() else { return };
        let Some(file) = p.file else { return };
        let (message, code) = match p.code {
            Some(code) => (p.message, code),
            None => match CODE_TAIL.captures(&p.message) {
                Some(c) => (c[1].to_owned(), c[2].to_owned()),
                None if p.level == "note" => (p.message, "note".to_owned()),
                None => (p.message, "misc".to_owned()),
            },
        };
        let code = if p.level == "note" { "note".to_owned() } else { code };
        out.push(Finding::new(Kind::Lint, severity(&p.level), "mypy", code, message).at(
            Some(file),
            Some(p.line),
            p.column,
        ));
    }
}

impl Session for MypySession {
    fn line(&mut self, line: &str, out: &mut Vec<Finding>) -> bool {
        if let Some(c) = TEXT.captures(line) {
            self.flush(out);
            let message = c[5].to_owned();
            // A wrapped `--pretty` message ends with its code on a later line.
            self.pending = Some(Pending {
                file: self.paths.map(&c[1]),
                line: c[2].parse().unwrap_or(0),
                column: c.get(3).and_then(|m| m.as_str().parse().ok()),
                level: c[4].to_owned(),
                message,
                code: None,
            });
            return false;
        }
        let Some(p) = &mut self.pending else { return false };
        let continues = !line.is_empty()
            && !line.starts_with(char::is_whitespace)
            && !line.starts_with("Found ")
            && !line.starts_with("Success:")
            && !line.contains(": note: In ")
            && !CODE_TAIL.is_match(&p.message);
        if continues {
            p.message.push(' ');
            p.message.push_str(line.trim());
        } else {
            self.flush(out);
        }
        false
    }

    fn json(&mut self, doc: &Value, out: &mut Vec<Finding>) {
        if doc.get("severity").is_none() || doc.get("file").is_none() || doc.get("hint").is_none() {
            return;
        }
        let Ok(r) = Record::deserialize(doc) else { return };
        let Some(file) = self.paths.map(&r.file) else { return };
        let line = u32::try_from(r.line).ok();
        let column = r.column.and_then(|c| u32::try_from(c + 1).ok());
        let code = match (&r.code, r.severity.as_str()) {
            (_, "note") => "note".to_owned(),
            (Some(c), _) if !c.is_empty() => c.clone(),
            _ => "misc".to_owned(),
        };
        let message = match &r.hint {
            Some(h) if !h.is_empty() => format!("{}\n{h}", r.message),
            _ => r.message.clone(),
        };
        out.push(
            Finding::new(Kind::Lint, severity(&r.severity), "mypy", code, message)
                .at(Some(file), line, column)
                .with_raw(doc.clone()),
        );
    }

    fn finish(&mut self, out: &mut Vec<Finding>) {
        self.flush(out);
    }
}
