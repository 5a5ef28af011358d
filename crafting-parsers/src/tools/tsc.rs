//! `tsc` diagnostics in both console forms.
//!
//! Plain: `src/a.ts(3,7): error TS2322: message`, further message lines
//! indented by two spaces. Pretty (`--pretty`, the default on a terminal):
//! `src/a.ts:3:7 - error TS2322: message`, further message lines indented,
//! then a blank line and a code frame. Message chains are joined with
//! newlines. Lines and columns are 1-based; tsc counts columns in UTF-16
//! code units (characters, except after astral-plane characters). Paths are
//! relative to the folder tsc ran in. `error` maps to error, `warning` to
//! warn, `message` to info; the code is `TS` and the number.

use std::sync::LazyLock;

use regex::Regex;

use crate::finding::{Finding, Kind, Severity};
use crate::paths::PathMapper;
use crate::registry::{ParseContext, Session};

static PLAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(.+?)\((\d+),(\d+)\): (error|warning|message) (TS\d+): (.*)$")
        .expect("valid regex")
});
static PRETTY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(.+?):(\d+):(\d+) - (error|warning|message) (TS\d+): (.*)$").expect("valid regex")
});

struct Pending {
    finding: Finding,
    lines: Vec<String>,
}

/// Reads tsc's console output.
pub(crate) struct TscSession {
    paths: PathMapper,
    pending: Option<Pending>,
}

impl TscSession {
    pub(crate) fn new(ctx: &ParseContext) -> Self {
        TscSession { paths: PathMapper::new(ctx), pending: None }
    }

    fn flush(&mut self, out: &mut Vec<Finding>) {
        if let Some(mut p) = self.pending.take() {
            p.finding.message = p.lines.join("\n");
            out.push(p.finding);
        }
    }
}

impl Session for TscSession {
    fn line(&mut self, line: &str, out: &mut Vec<Finding>) -> bool {
        let caps = PLAIN.captures(line).or_else(|| PRETTY.captures(line));
        if let Some(c) = caps {
            self.flush(out);
            let Some(file) = self.paths.map(&c[1]) else { return false };
            let severity = match &c[4] {
                "error" => Severity::Error,
                "warning" => Severity::Warn,
                _ => Severity::Info,
            };
            let finding = Finding::new(Kind::Lint, severity, "tsc", &c[5], "").at(
                Some(file),
                c[2].parse().ok(),
                c[3].parse().ok(),
            );
            self.pending = Some(Pending { finding, lines: vec![c[6].to_owned()] });
            return false;
        }
        if let Some(p) = &mut self.pending {
            if line.starts_with("  ") && !line.trim().is_empty() && p.lines.len() < 100 {
                p.lines.push(line.trim().to_owned());
            } else {
                self.flush(out);
            }
        }
        false
    }

    fn finish(&mut self, out: &mut Vec<Finding>) {
        self.flush(out);
    }
}
