//! pytest's console output.
//!
//! The short test summary names each problem: `FAILED nodeid - reason` for a
//! failed test and `ERROR nodeid - reason` for an error in setup, teardown or
//! collection; each becomes a `test_fail` coded by its node id. Node ids are
//! relative to pytest's rootdir (the `rootdir:` header line; the work dir
//! when absent). The failures section printed before the summary, one block
//! per failed test in the same order, supplies the line: with `--tb=line`
//! each block is one `path:line: message` line, with `--tb=short` or `long`
//! a block runs from one `____ name ____` header to the next and its last
//! `path:line:` in the test's own file wins. A line is only taken when the
//! blocks and the summary agree in number and file. Collection errors have
//! no line.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::json;

use crate::finding::{Finding, Kind, Severity};
use crate::paths::PathMapper;
use crate::registry::{ParseContext, Session};

static SUMMARY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(FAILED|ERROR) (.+)$").expect("valid regex"));
static BANNER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^=+ (.+?) =+$").expect("valid regex"));
static BLOCK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^_{3,} (.+?) _{3,}$").expect("valid regex"));
static LOCATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(\S.*?\.py):(\d+): (.*)$").expect("valid regex"));

#[derive(PartialEq)]
enum Section {
    Other,
    Failures,
}

/// A failure block: where it points, and what the `--tb=line` form said.
#[derive(Default)]
struct Block {
    locations: Vec<(String, u32)>,
    message: Option<String>,
}

struct Summary {
    failed: bool,
    nodeid: String,
    reason: Option<String>,
}

/// Reads pytest's console.
pub(crate) struct PytestSession {
    paths: PathMapper,
    rootdir: Option<String>,
    section: Section,
    /// `--tb=line` has no block headers: each location line is a block.
    headed: bool,
    blocks: Vec<Block>,
    summaries: Vec<Summary>,
}

/// Splits `nodeid - reason`, minding ` - ` inside parameter brackets.
pub(crate) fn split_summary(rest: &str) -> (&str, Option<&str>) {
    let search_from = rest.rfind(']').filter(|_| rest.contains('[')).unwrap_or(0);
    match rest[search_from..].find(" - ") {
        Some(i) => {
            let at = search_from + i;
            (&rest[..at], Some(&rest[at + 3..]))
        }
        None => (rest, None),
    }
}

impl PytestSession {
    pub(crate) fn new(ctx: &ParseContext) -> Self {
        PytestSession {
            paths: PathMapper::new(ctx),
            rootdir: None,
            section: Section::Other,
            headed: false,
            blocks: Vec::new(),
            summaries: Vec::new(),
        }
    }

    /// The repository-relative folder node ids start from.
    fn base(&self) -> String {
        self.rootdir.clone().unwrap_or_else(|| self.paths.work_dir())
    }
}

impl Session for PytestSession {
    fn line(&mut self, line: &str, _out: &mut Vec<Finding>) -> bool {
        if let Some(root) = line.strip_prefix("rootdir: ") {
            let root = root.split(", ").next().unwrap_or(root);
            self.rootdir = self.paths.relative_dir(root.trim());
            return false;
        }
        if let Some(c) = BANNER.captures(line) {
            self.section = if &c[1] == "FAILURES" { Section::Failures } else { Section::Other };
            if self.section == Section::Failures {
                self.blocks.clear();
                self.headed = false;
            }
            return false;
        }
        if let Some(c) = SUMMARY.captures(line) {
            let (nodeid, reason) = split_summary(&c[2]);
            self.summaries.push(Summary {
                failed: &c[1] == "FAILED",
                nodeid: nodeid.to_owned(),
                reason: reason.map(str::to_owned),
            });
            return false;
        }
        if self.section != Section::Failures {
            return false;
        }
        if BLOCK.is_match(line) {
            self.headed = true;
            self.blocks.push(Block::default());
            return false;
        }
        if let Some(c) = LOCATION.captures(line) {
            let at = (c[1].to_owned(), c[2].parse().unwrap_or(0));
            if self.headed {
                if let Some(block) = self.blocks.last_mut() {
                    block.locations.push(at);
                }
            } else {
                self.blocks.push(Block { locations: vec![at], message: Some(c[3].to_owned()) });
            }
        }
        false
    }

    fn finish(&mut self, out: &mut Vec<Finding>) {
        let base = self.base();
        let failed_count = self.summaries.iter().filter(|s| s.failed).count();
        let paired = failed_count == self.blocks.len();
        let mut blocks = std::mem::take(&mut self.blocks).into_iter();
        for s in std::mem::take(&mut self.summaries) {
            let block = if s.failed && paired { blocks.next() } else { None };
            let path = s.nodeid.split("::").next().unwrap_or(&s.nodeid);
            let file = self.paths.map_from(path, &base);
            let line = block.as_ref().and_then(|b| {
                b.locations.iter().rev().find_map(|(p, l)| {
                    let mapped = self.paths.map_from(p, &base);
                    (mapped.is_some() && mapped == file).then_some(*l)
                })
            });
            let message = s
                .reason
                .clone()
                .or_else(|| block.as_ref().and_then(|b| b.message.clone()))
                .unwrap_or_else(|| match (s.failed, s.nodeid.contains("::")) {
                    (true, _) => "test failed".into(),
                    (false, true) => "error in setup or teardown".into(),
                    (false, false) => "error during collection".into(),
                });
            let raw = json!({
                "outcome": if s.failed { "failed" } else { "error" },
                "nodeid": s.nodeid,
                "reason": s.reason,
            });
            out.push(
                Finding::new(Kind::TestFail, Severity::Error, "pytest", &s.nodeid, message)
                    .at(file, line, None)
                    .with_raw(raw),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_split_minds_parameters() {
        assert_eq!(split_summary("t.py::a[x - y] - boom"), ("t.py::a[x - y]", Some("boom")));
        assert_eq!(split_summary("t.py::a - x - y"), ("t.py::a", Some("x - y")));
        assert_eq!(split_summary("tests/a b.py"), ("tests/a b.py", None));
    }
}
