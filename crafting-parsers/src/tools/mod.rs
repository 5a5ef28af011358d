//! One module per tool. Each mirrors the tool's raw output in private structs,
//! converts it into [`Finding`]s and is exposed as a unit struct implementing
//! [`Parser`] with a streaming [`Session`].

use std::io::BufRead;

use serde_json::Value;

use crate::finding::Finding;
use crate::registry::{ParseContext, Parser, Session};
use crate::stream;

mod cargo_audit;
mod cargo_diagnostics;
mod cargo_test;
mod eslint;
mod go_vet;
mod govulncheck;
mod junit;
mod mypy;
mod pip_audit;
mod pytest;
mod ruff;
mod sarif;
mod tsc;

/// Declares a public parser type whose session is built by `$make(ctx)`.
macro_rules! streaming_parser {
    ($(#[$doc:meta])* $name:ident => $make:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name;

        impl Parser for $name {
            fn claims(&self, _recipe: &str) -> bool {
                true
            }

            fn parse(&self, ctx: &ParseContext, log: &mut dyn BufRead) -> Vec<Finding> {
                let mut sessions: Vec<Box<dyn Session>> = vec![Box::new($make(ctx))];
                stream::run(&mut sessions, log)
            }

            fn session(&self, ctx: &ParseContext) -> Option<Box<dyn Session>> {
                Some(Box::new($make(ctx)))
            }
        }
    };
}

streaming_parser!(
    /// rustc diagnostics as cargo prints them with `--message-format=json`
    /// (`cargo build`, `cargo check`, `cargo clippy`), and bare
    /// `rustc --error-format=json` lines.
    CargoDiagnostics => cargo_diagnostics::CargoSession::new
);
streaming_parser!(
    /// `cargo audit --json` reports.
    CargoAudit => cargo_audit::AuditSession::new
);
streaming_parser!(
    /// The human text of `cargo test`: failed unit, integration and doc tests.
    CargoTest => cargo_test::TestSession::new
);
streaming_parser!(
    /// `ruff check --output-format=json` arrays, current and older layouts.
    Ruff => ruff::RuffSession::new
);
streaming_parser!(
    /// `mypy -O json` lines and mypy's classic text (`file:line[:col]: error: ...`).
    Mypy => mypy::MypySession::new
);
streaming_parser!(
    /// pytest's console: `FAILED`/`ERROR` summary lines, with locations from
    /// the failures section (`--tb=line`, `--tb=short`, `--tb=long`).
    Pytest => pytest::PytestSession::new
);
streaming_parser!(
    /// `pip-audit -f json` reports.
    PipAudit => pip_audit::PipAuditSession::new
);
streaming_parser!(
    /// `govulncheck -json` message streams.
    Govulncheck => govulncheck::VulnSession::new
);
streaming_parser!(
    /// `go vet -json` documents.
    GoVet => go_vet::VetSession::new
);
streaming_parser!(
    /// `eslint -f json` arrays.
    Eslint => eslint::EslintSession::new
);
streaming_parser!(
    /// `tsc` diagnostics, plain (`file(line,col): error TS...`) and pretty
    /// (`file:line:col - error TS...`).
    Tsc => tsc::TscSession::new
);
streaming_parser!(
    /// SARIF 2.1.0 documents printed into the log.
    Sarif => sarif::SarifSession::new
);
streaming_parser!(
    /// JUnit XML reports printed into the log (pytest, cargo-nextest,
    /// go-junit-report and others).
    Junit => junit::JunitSession::new
);

/// A JSON number as a `u32`, when it is a non-negative integer that fits.
pub(crate) fn as_u32(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

/// A JSON string field, when present and a string.
pub(crate) fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Cuts a string to at most `max` bytes on a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Parses a dotted version (`1.2.3`, `v0.7.0`, `>=0.14.10`) into numbers
/// for ordering; non-numeric parts count as 0.
pub(crate) fn version_key(v: &str) -> Vec<u64> {
    let v = v.trim_start_matches(|c: char| !c.is_ascii_digit());
    v.split(['.', '-', '+'])
        .take(4)
        .map(|p| {
            let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().unwrap_or(0)
        })
        .collect()
}

/// The lowest of `versions` that is not below `installed`, else the lowest.
pub(crate) fn pick_fix_version<'a>(
    versions: impl IntoIterator<Item = &'a str>,
    installed: Option<&str>,
) -> Option<String> {
    let mut all: Vec<(Vec<u64>, &str)> = versions
        .into_iter()
        .filter(|v| !v.trim().is_empty())
        .map(|v| (version_key(v), v))
        .collect();
    all.sort();
    let floor = installed.map(version_key);
    let chosen = match &floor {
        Some(floor) => all.iter().find(|(k, _)| k >= floor).or(all.first()),
        None => all.first(),
    };
    chosen.map(|(_, v)| v.trim_start_matches(['>', '=', '^', '~', ' ']).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fix_version_prefers_the_lowest_upgrade() {
        let patched = [">=0.14.10", "^0.13.5"];
        assert_eq!(pick_fix_version(patched, Some("0.14.9")).as_deref(), Some("0.14.10"));
        assert_eq!(pick_fix_version(patched, Some("0.13.1")).as_deref(), Some("0.13.5"));
        assert_eq!(pick_fix_version(patched, None).as_deref(), Some("0.13.5"));
        assert_eq!(pick_fix_version([], None), None);
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
