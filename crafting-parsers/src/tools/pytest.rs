//! pytest's console output.
//!
//! The short test summary names each problem: `FAILED nodeid - reason` for a
//! failed test and `ERROR nodeid - reason` for an error in setup, teardown or
//! collection; each becomes a `test_fail` coded by its node id. Node ids are
//! relative to pytest's rootdir: the `rootdir:` header line when printed;
//! else (`-q` drops the header) the rootdir is inferred from an absolute path
//! printed elsewhere in the log that ends with the node id's file (a
//! `--tb=line` location, a traceback frame, the module named by an `ERROR
//! collecting` block): the rootdir is that path minus the node id's file.
//! When nothing can be inferred, the work dir stands in.
//!
//! The failures section printed before the summary, one block per failed
//! test in the same order, supplies the line: with `--tb=line` each block is
//! one `path:line: message` line, with `--tb=short` or `long` a block runs
//! from one `____ name ____` header to the next and its last `path:line:` in
//! the test's own file wins. When the blocks and the failed tests agree in
//! number they pair in order; otherwise each failed test takes the next
//! block pointing into its file (and, for `--tb=line`, saying the same
//! message). A line is only taken from a block in the test's own file.
//! Collection errors have no line.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::json;

use crate::finding::{Finding, Kind, Severity};
use crate::paths::{PathMapper, is_absolute};
use crate::registry::{ParseContext, Session};

static SUMMARY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(FAILED|ERROR) (.+)$").expect("valid regex"));
static BANNER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^=+ (.+?) =+$").expect("valid regex"));
static BLOCK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^_{3,} (.+?) _{3,}$").expect("valid regex"));
static LOCATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(\S.*?\.py):(\d+): (.*)$").expect("valid regex"));
/// Absolute paths of test files printed outside location lines: the module
/// of an `ERROR collecting` import error, a syntax error's `File "..."`.
pub(crate) static NAMED_FILE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?:test module '([^']+\.py)'|File "([^"]+\.py)", line \d+)"#)
        .expect("valid regex")
});

/// How many distinct absolute paths are kept for rootdir inference.
const MAX_ABSOLUTE_PATHS: usize = 4096;

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
    /// Absolute `.py` paths seen anywhere, in order, for rootdir inference.
    absolute: Vec<String>,
    seen: HashSet<String>,
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
            absolute: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// Remembers an absolute path printed in the log.
    fn note_path(&mut self, path: &str) {
        if is_absolute(path)
            && self.absolute.len() < MAX_ABSOLUTE_PATHS
            && self.seen.insert(path.to_owned())
        {
            self.absolute.push(path.to_owned());
        }
    }

    /// The rootdir (repository-relative) implied by an absolute path that
    /// ends with `file`, a node id's file part.
    fn infer_rootdir(&self, file: &str) -> Option<String> {
        self.absolute.iter().find_map(|abs| self.paths.base_of(abs, file))
    }

    /// The repository-relative folder each summary's node id starts from:
    /// the `rootdir:` header, else the rootdir inferred for its own file,
    /// else the one inferred for another file of the run, else the work dir.
    fn bases(&self) -> Vec<String> {
        if let Some(root) = &self.rootdir {
            return vec![root.clone(); self.summaries.len()];
        }
        let own: Vec<Option<String>> =
            self.summaries.iter().map(|s| self.infer_rootdir(node_file(&s.nodeid))).collect();
        let any = own.iter().flatten().next().cloned().unwrap_or_else(|| self.paths.work_dir());
        own.into_iter().map(|b| b.unwrap_or_else(|| any.clone())).collect()
    }
}

/// The file part of a node id.
fn node_file(nodeid: &str) -> &str {
    nodeid.split("::").next().unwrap_or(nodeid)
}

/// Whether a `--tb=line` message and a summary reason say the same thing;
/// either may be cut short (the summary is fitted to the terminal width).
fn same_message(block: Option<&str>, reason: Option<&str>) -> bool {
    let (Some(a), Some(b)) = (block, reason) else { return true };
    let (a, b) = (a.trim().trim_end_matches("..."), b.trim().trim_end_matches("..."));
    a.starts_with(b) || b.starts_with(a)
}

impl Session for PytestSession {
    fn line(&mut self, line: &str, _out: &mut Vec<Finding>) -> bool {
        if let Some(c) = LOCATION.captures(line) {
            self.note_path(&c[1]);
        } else if line.contains(".py")
            && let Some(c) = NAMED_FILE.captures(line)
        {
            let path = c.get(1).or_else(|| c.get(2)).map_or("", |m| m.as_str());
            self.note_path(path);
        }
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
        let bases = self.bases();
        let summaries = std::mem::take(&mut self.summaries);
        let blocks = std::mem::take(&mut self.blocks);
        let files: Vec<Option<String>> = summaries
            .iter()
            .zip(&bases)
            .map(|(s, base)| self.paths.map_from(node_file(&s.nodeid), base))
            .collect();
        // The line of `block` in `file`: its last location there.
        let line_in = |block: &Block, file: &Option<String>, base: &str| {
            block.locations.iter().rev().find_map(|(p, l)| {
                let mapped = self.paths.map_from(p, base);
                (mapped.is_some() && mapped == *file).then_some(*l)
            })
        };
        let failed_count = summaries.iter().filter(|s| s.failed).count();
        let mut chosen: Vec<Option<usize>> = vec![None; summaries.len()];
        if failed_count == blocks.len() {
            let mut next = 0..blocks.len();
            for (i, s) in summaries.iter().enumerate() {
                if s.failed {
                    chosen[i] = next.next();
                }
            }
        } else {
            // Blocks are missing or extra: pair by file, in order.
            let mut from = 0;
            for (i, s) in summaries.iter().enumerate() {
                if !s.failed || files[i].is_none() {
                    continue;
                }
                let found = (from..blocks.len()).find(|&b| {
                    line_in(&blocks[b], &files[i], &bases[i]).is_some()
                        && same_message(blocks[b].message.as_deref(), s.reason.as_deref())
                });
                if let Some(b) = found {
                    chosen[i] = Some(b);
                    from = b + 1;
                }
            }
        }
        for (i, s) in summaries.into_iter().enumerate() {
            let block = chosen[i].map(|b| &blocks[b]);
            let file = files[i].clone();
            let line = block.and_then(|b| line_in(b, &file, &bases[i]));
            let message =
                s.reason.clone().or_else(|| block.and_then(|b| b.message.clone())).unwrap_or_else(
                    || match (s.failed, s.nodeid.contains("::")) {
                        (true, _) => "test failed".into(),
                        (false, true) => "error in setup or teardown".into(),
                        (false, false) => "error during collection".into(),
                    },
                );
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

    #[test]
    fn messages_agree_when_one_is_cut_short() {
        assert!(same_message(Some("AssertionError: nope"), Some("AssertionError: no...")));
        assert!(same_message(Some("assert 2 == 3"), None));
        assert!(!same_message(Some("assert 2 == 3"), Some("ValueError: bad")));
    }
}
