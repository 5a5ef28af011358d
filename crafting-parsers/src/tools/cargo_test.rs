//! The human text of `cargo test` (libtest's console output).
//!
//! Every `test NAME ... FAILED` line becomes a `test_fail` whose code is the
//! test's name (`tests::it_works`, or `src/lib.rs - foo (line 3)` for a doc
//! test). The panic printed in the test's `---- NAME stdout ----` section
//! gives the message and the location, in both the current form
//! (`thread 'x' panicked at src/lib.rs:10:5:` followed by the message) and
//! the older one (`thread 'x' panicked at 'message', src/lib.rs:10:5`).
//! Panic locations are 1-based lines and columns relative to the cargo
//! workspace root, which is taken to be the recipe's work dir; locations
//! outside the repository (the standard library, dependencies) are left out.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::json;

use crate::finding::{Finding, Kind, Severity};
use crate::paths::PathMapper;
use crate::registry::{ParseContext, Session};

static TEST_FAILED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^test (.+?) \.\.\. FAILED$").expect("valid regex"));
static SECTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^---- (.+?) stdout ----$").expect("valid regex"));
static PANIC_NEW: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*thread '(.*?)'(?: \(\d+\))? panicked at (.+):(\d+):(\d+):$")
        .expect("valid regex")
});
static PANIC_OLD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*thread '(.*?)'(?: \(\d+\))? panicked at '(.*)$").expect("valid regex")
});
static OLD_TAIL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(.*)', (.+):(\d+):(\d+)$").expect("valid regex"));

/// A panic found in a test's output.
#[derive(Debug, Clone, Default)]
pub(crate) struct Panic {
    pub(crate) file: String,
    pub(crate) line: u32,
    pub(crate) column: u32,
    pub(crate) message: Vec<String>,
}

/// Reads panics out of text, line by line.
#[derive(Debug, Default)]
pub(crate) struct PanicReader {
    /// A panic whose message is still being read; `true` for the old form.
    open: Option<(Panic, bool)>,
    done: Option<Panic>,
}

impl PanicReader {
    /// Feeds one line; returns `true` while the line belongs to a panic.
    pub(crate) fn feed(&mut self, line: &str) -> bool {
        if let Some((mut panic, old)) = self.open.take() {
            if old {
                if let Some(c) = OLD_TAIL.captures(line) {
                    panic.message.push(c[1].to_owned());
                    panic.file = c[2].to_owned();
                    panic.line = c[3].parse().unwrap_or(0);
                    panic.column = c[4].parse().unwrap_or(0);
                    self.finish(panic);
                } else if panic.message.len() < 200 {
                    panic.message.push(line.to_owned());
                    self.open = Some((panic, true));
                } else {
                    self.finish(panic);
                }
                return true;
            }
            let t = line.trim();
            let ends = t.is_empty()
                || t.starts_with("note: ")
                || t == "stack backtrace:"
                || line.starts_with("---- ")
                || line.starts_with("failures:")
                || panic.message.len() >= 200;
            if ends {
                self.finish(panic);
                return false;
            }
            panic.message.push(line.trim_start_matches("    ").to_owned());
            self.open = Some((panic, false));
            return true;
        }
        if !line.contains("panicked at ") {
            return false;
        }
        if let Some(c) = PANIC_NEW.captures(line) {
            let panic = Panic {
                file: c[2].to_owned(),
                line: c[3].parse().unwrap_or(0),
                column: c[4].parse().unwrap_or(0),
                message: Vec::new(),
            };
            self.open = Some((panic, false));
            return true;
        }
        if let Some(c) = PANIC_OLD.captures(line) {
            let rest = &c[2];
            let mut panic = Panic::default();
            if let Some(t) = OLD_TAIL.captures(rest) {
                panic.message.push(t[1].to_owned());
                panic.file = t[2].to_owned();
                panic.line = t[3].parse().unwrap_or(0);
                panic.column = t[4].parse().unwrap_or(0);
                self.finish(panic);
            } else {
                panic.message.push(rest.to_owned());
                self.open = Some((panic, true));
            }
            return true;
        }
        false
    }

    fn finish(&mut self, panic: Panic) {
        // The first panic of a test is the one that failed it.
        if self.done.is_none() {
            self.done = Some(panic);
        }
    }

    /// The panic read so far, closing one still open.
    pub(crate) fn take(&mut self) -> Option<Panic> {
        if let Some((panic, _)) = self.open.take() {
            self.finish(panic);
        }
        self.done.take()
    }
}

/// Reads one or more `cargo test` runs.
pub(crate) struct TestSession {
    paths: PathMapper,
    /// Failed tests of the current test binary, in order.
    failed: Vec<String>,
    /// Panics by test name, for the current test binary.
    panics: HashMap<String, Panic>,
    section: Option<String>,
    reader: PanicReader,
}

impl TestSession {
    pub(crate) fn new(ctx: &ParseContext) -> Self {
        TestSession {
            paths: PathMapper::new(ctx),
            failed: Vec::new(),
            panics: HashMap::new(),
            section: None,
            reader: PanicReader::default(),
        }
    }

    fn close_section(&mut self) {
        if let Some(name) = self.section.take()
            && let Some(panic) = self.reader.take()
        {
            self.panics.insert(name, panic);
        }
        self.reader = PanicReader::default();
    }

    fn flush(&mut self, out: &mut Vec<Finding>) {
        self.close_section();
        for name in std::mem::take(&mut self.failed) {
            let panic = self.panics.remove(&name);
            out.push(test_failure(&self.paths, "cargo-test", &name, panic.as_ref()));
        }
        self.panics.clear();
    }
}

/// A failed Rust test as a finding.
pub(crate) fn test_failure(
    paths: &PathMapper,
    tool: &str,
    name: &str,
    panic: Option<&Panic>,
) -> Finding {
    let message = panic
        .map(|p| p.message.join("\n").trim().to_owned())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "test failed".to_owned());
    let file = panic.and_then(|p| paths.map(&p.file));
    let (line, column) = match (panic, &file) {
        (Some(p), Some(_)) => (Some(p.line), Some(p.column)),
        _ => (None, None),
    };
    let raw = json!({
        "test": name,
        "panic_location": panic.map(|p| format!("{}:{}:{}", p.file, p.line, p.column)),
    });
    Finding::new(Kind::TestFail, Severity::Error, tool, name, message)
        .at(file, line, column)
        .with_raw(raw)
}

impl Session for TestSession {
    fn line(&mut self, line: &str, out: &mut Vec<Finding>) -> bool {
        if let Some(c) = TEST_FAILED.captures(line) {
            self.failed.push(c[1].to_owned());
            return false;
        }
        if let Some(c) = SECTION.captures(line) {
            self.close_section();
            self.section = Some(c[1].to_owned());
            return false;
        }
        if line.starts_with("test result: ") {
            self.flush(out);
            return false;
        }
        if self.section.is_some() {
            if line == "failures:" {
                self.close_section();
            } else {
                self.reader.feed(line);
            }
        }
        false
    }

    fn finish(&mut self, out: &mut Vec<Finding>) {
        self.flush(out);
    }
}
