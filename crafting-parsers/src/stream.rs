//! One pass over a log: bounded line reading, clean-up of terminal noise,
//! detection of JSON documents between human text, and the de-duplication of
//! what the sessions found.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{BufRead, Read};

use crate::finding::{Finding, Kind};
use crate::registry::Session;

/// Longest line kept; the rest of a longer line is skipped.
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;
/// Largest multi-line JSON document buffered; a larger one is skipped.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024 * 1024;

/// Reads one line into `buf` (without its `\n`). Returns `None` at the end of
/// the log or on a read error, `Some(false)` when the line was longer than
/// `max` and was dropped, `Some(true)` otherwise.
fn read_line(log: &mut dyn BufRead, buf: &mut Vec<u8>, max: usize) -> Option<bool> {
    buf.clear();
    let limit = u64::try_from(max).unwrap_or(u64::MAX);
    let n = match Read::take(&mut *log, limit).read_until(b'\n', buf) {
        Ok(n) => n,
        Err(_) => return None,
    };
    if n == 0 {
        return None;
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        return Some(true);
    }
    if n < max {
        // The log ended without a final newline.
        return Some(true);
    }
    // Too long: skip to the next newline.
    buf.clear();
    loop {
        let chunk = match log.fill_buf() {
            Ok(c) if !c.is_empty() => c,
            _ => return Some(false),
        };
        match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => {
                log.consume(i + 1);
                return Some(false);
            }
            None => {
                let len = chunk.len();
                log.consume(len);
            }
        }
    }
}

/// Removes terminal escape sequences (colours, cursor moves, hyperlinks).
pub(crate) fn strip_ansi(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        if b != 0x1b {
            out.push(b);
            i += 1;
            continue;
        }
        match line.get(i + 1) {
            // CSI: parameters and intermediates, then one final byte.
            Some(b'[') => {
                i += 2;
                while i < line.len() && !(0x40..=0x7e).contains(&line[i]) {
                    i += 1;
                }
                i += 1;
            }
            // OSC: up to BEL or ESC '\'.
            Some(b']') => {
                i += 2;
                while i < line.len() {
                    if line[i] == 0x07 {
                        i += 1;
                        break;
                    }
                    if line[i] == 0x1b && line.get(i + 1) == Some(&b'\\') {
                        i += 2;
                        break;
                    }
                    i += 1;
                }
            }
            Some(_) => i += 2,
            None => i += 1,
        }
    }
    out
}

/// A raw line made readable: no trailing CR, no escape sequences, only the
/// text after the last carriage return (what a terminal would show), and
/// invalid UTF-8 replaced.
pub(crate) fn clean_line(raw: &[u8]) -> Cow<'_, str> {
    let mut bytes: Cow<'_, [u8]> = Cow::Borrowed(raw);
    while bytes.last() == Some(&b'\r') {
        let len = bytes.len() - 1;
        bytes = match bytes {
            Cow::Borrowed(b) => Cow::Borrowed(&b[..len]),
            Cow::Owned(mut v) => {
                v.truncate(len);
                Cow::Owned(v)
            }
        };
    }
    if bytes.contains(&0x1b) {
        bytes = Cow::Owned(strip_ansi(&bytes));
    }
    if bytes.contains(&b'\r') {
        let from = bytes.iter().rposition(|b| *b == b'\r').map_or(0, |i| i + 1);
        bytes = match bytes {
            Cow::Borrowed(b) => Cow::Borrowed(&b[from..]),
            Cow::Owned(v) => Cow::Owned(v[from..].to_vec()),
        };
    }
    match bytes {
        Cow::Borrowed(b) => match std::str::from_utf8(b) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(b),
        },
        Cow::Owned(v) => match String::from_utf8(v) {
            Ok(s) => Cow::Owned(s),
            Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
        },
    }
}

/// Where a JSON document being collected stands.
#[derive(Default)]
struct JsonScan {
    text: String,
    lines: Vec<String>,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// Past the size bound: still tracking depth, no longer keeping text.
    skipping: bool,
}

/// What feeding one line to the scanner gave.
enum ScanStep {
    /// The document goes on.
    More,
    /// The document closed at byte `end` of the line; `end..` is left over.
    Done { end: usize },
    /// The line cannot belong to a JSON document.
    Broken,
}

impl JsonScan {
    /// Whether a line can open a JSON document.
    fn opens(line: &str) -> bool {
        let t = line.trim_start();
        t.starts_with('{') || t.starts_with('[')
    }

    /// Whether a line can continue a pretty-printed document: JSON strings
    /// never span lines, so every line starts with a structural character,
    /// a string, a number or a literal.
    fn continues(line: &str) -> bool {
        let t = line.trim_start();
        match t.as_bytes().first() {
            None => true,
            Some(b'{' | b'}' | b'[' | b']' | b'"' | b',' | b':' | b'-' | b'0'..=b'9') => true,
            _ => t.starts_with("true") || t.starts_with("false") || t.starts_with("null"),
        }
    }

    fn feed(&mut self, line: &str) -> ScanStep {
        let bytes = line.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        self.keep(&line[..=i]);
                        return ScanStep::Done { end: i + 1 };
                    }
                }
                _ => {}
            }
        }
        if self.in_string {
            return ScanStep::Broken;
        }
        self.keep(line);
        self.text.push('\n');
        ScanStep::More
    }

    fn keep(&mut self, part: &str) {
        if self.skipping {
            return;
        }
        if self.text.len() + part.len() > MAX_DOCUMENT_BYTES {
            self.skipping = true;
            self.text = String::new();
            self.lines = Vec::new();
            return;
        }
        self.text.push_str(part);
    }
}

/// Runs every session over the log in one pass and returns what they found,
/// de-duplicated as it arrives (memory follows distinct findings).
pub(crate) fn run(sessions: &mut [Box<dyn Session>], log: &mut dyn BufRead) -> Vec<Finding> {
    let mut found = Dedupe::default();
    let mut out = Vec::new();
    let mut raw = Vec::new();
    let mut scan: Option<JsonScan> = None;
    while let Some(kept) = read_line(log, &mut raw, MAX_LINE_BYTES) {
        if !kept {
            continue;
        }
        let line = clean_line(&raw);
        feed_line(sessions, &mut scan, &line, &mut out);
        if !out.is_empty() {
            found.extend(out.drain(..));
        }
    }
    // A document cut off by the end of the log is given back as text.
    if let Some(open) = scan.take() {
        for line in open.lines.iter().skip(1) {
            offer(sessions, line, &mut out);
        }
    }
    for session in sessions.iter_mut() {
        session.finish(&mut out);
    }
    found.extend(out);
    found.into_vec()
}

/// Offers a line to the sessions in order; the first one that uses it ends
/// the offer.
fn offer(sessions: &mut [Box<dyn Session>], line: &str, out: &mut Vec<Finding>) -> bool {
    sessions.iter_mut().any(|s| s.line(line, out))
}

fn feed_line(
    sessions: &mut [Box<dyn Session>],
    scan: &mut Option<JsonScan>,
    line: &str,
    out: &mut Vec<Finding>,
) {
    let mut line = line;
    loop {
        let state = match scan {
            Some(state) => state,
            None => {
                if offer(sessions, line, out) || !JsonScan::opens(line) {
                    return;
                }
                scan.insert(JsonScan::default())
            }
        };
        let first_line = state.lines.is_empty();
        if !first_line && !JsonScan::continues(line) {
            // Not JSON after all: hand back what was held, then this line.
            let held = std::mem::take(&mut state.lines);
            *scan = None;
            for old in held.iter().skip(1) {
                offer(sessions, old, out);
            }
            continue;
        }
        let (start, body) = if first_line {
            let trimmed = line.trim_start();
            (line.len() - trimmed.len(), trimmed)
        } else {
            (0, line)
        };
        if !state.skipping {
            state.lines.push(line.to_owned());
        }
        match state.feed(body) {
            ScanStep::More => return,
            ScanStep::Broken => {
                let held = std::mem::take(&mut state.lines);
                *scan = None;
                for old in held.iter().skip(1) {
                    offer(sessions, old, out);
                }
                return;
            }
            ScanStep::Done { end } => {
                let done = scan.take().unwrap_or_default();
                let parsed = if done.skipping {
                    None
                } else {
                    serde_json::from_str::<serde_json::Value>(&done.text).ok()
                };
                let Some(doc) = parsed else {
                    // Looked like JSON, was not: the held lines were text.
                    for old in done.lines.iter().skip(1) {
                        offer(sessions, old, out);
                    }
                    return;
                };
                for session in sessions.iter_mut() {
                    session.json(&doc, out);
                }
                // Text printed right after the document on the same line.
                let rest = &line[(start + end).min(line.len())..];
                if rest.trim().is_empty() {
                    return;
                }
                line = rest;
            }
        }
    }
}

/// How much a finding tells; the richer of two duplicates is kept.
fn richness(f: &Finding) -> usize {
    usize::from(f.file.is_some())
        + usize::from(f.line.is_some())
        + usize::from(f.column.is_some())
        + 2 * usize::from(f.suggested_fix.is_some())
        + 2 * usize::from(f.raw_json.is_some())
}

fn compatible<T: PartialEq>(a: &Option<T>, b: &Option<T>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// Merges findings that report the same thing: same kind, code and file, and
/// the same line and column where both know them. Failed tests match on the
/// test name and file even when one report lacks the line. The richer record
/// is kept, its missing fields filled from the other.
#[derive(Default)]
pub(crate) struct Dedupe {
    kept: Vec<Finding>,
    index: HashMap<DedupeKey, Vec<usize>>,
}

/// Kind, code, file and (except for failed tests) line.
type DedupeKey = (Kind, String, Option<String>, Option<u32>);

impl Dedupe {
    pub(crate) fn extend(&mut self, findings: impl IntoIterator<Item = Finding>) {
        for f in findings {
            self.push(f);
        }
    }

    fn push(&mut self, f: Finding) {
        let line_key = if f.kind == Kind::TestFail { None } else { f.line };
        let key = (f.kind, f.code.clone(), f.file.clone(), line_key);
        let slots = self.index.entry(key).or_default();
        let kept = &mut self.kept;
        let twin = slots.iter().copied().find(|&i| {
            let k = &kept[i];
            compatible(&k.line, &f.line) && compatible(&k.column, &f.column)
        });
        let Some(i) = twin else {
            slots.push(kept.len());
            kept.push(f);
            return;
        };
        let old = &mut kept[i];
        if *old == f {
            return;
        }
        let (mut rich, poor) = if richness(&f) > richness(old) {
            (f, std::mem::replace(old, placeholder()))
        } else {
            (std::mem::replace(old, placeholder()), f)
        };
        rich.line = rich.line.or(poor.line);
        rich.column = rich.column.or(poor.column);
        rich.suggested_fix = rich.suggested_fix.or(poor.suggested_fix);
        rich.raw_json = rich.raw_json.or(poor.raw_json);
        if rich.message.is_empty() {
            rich.message = poor.message;
        }
        rich.severity = rich.severity.max(poor.severity);
        rich.refresh_fingerprint();
        *old = rich;
    }

    pub(crate) fn into_vec(self) -> Vec<Finding> {
        self.kept
    }
}

/// A throwaway value to move a finding out of its slot for a moment.
fn placeholder() -> Finding {
    Finding::new(Kind::Lint, crate::finding::Severity::Info, "", "", "")
}

/// De-duplicates a finished list (see [`Dedupe`]).
pub(crate) fn dedupe(findings: Vec<Finding>) -> Vec<Finding> {
    let mut d = Dedupe::default();
    d.extend(findings);
    d.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_line_removes_colour_cr_and_progress() {
        assert_eq!(clean_line(b"\x1b[1m\x1b[91merror\x1b[0m: x\r"), "error: x");
        assert_eq!(clean_line(b"Building 1/3\rBuilding 3/3\r\r"), "Building 3/3");
        assert_eq!(clean_line(b"\x1b]8;;http://x\x07link\x1b]8;;\x07"), "link");
        assert_eq!(clean_line(b"bad \xff byte"), "bad \u{fffd} byte");
    }

    #[test]
    fn read_line_skips_overlong_lines_and_keeps_the_next() {
        let mut log: &[u8] = b"0123456789abc\nshort\nlast";
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut log, &mut buf, 8), Some(false));
        assert_eq!(read_line(&mut log, &mut buf, 8), Some(true));
        assert_eq!(buf, b"short");
        assert_eq!(read_line(&mut log, &mut buf, 8), Some(true));
        assert_eq!(buf, b"last");
        assert_eq!(read_line(&mut log, &mut buf, 8), None);
    }

    #[test]
    fn scanner_accepts_pretty_json_and_rejects_prose() {
        assert!(JsonScan::continues("  \"a\": 1,"));
        assert!(JsonScan::continues("\t}"));
        assert!(!JsonScan::continues("Compiling foo"));
        let mut scan = JsonScan::default();
        assert!(matches!(scan.feed("{\"a\": \"}\""), ScanStep::More));
        assert!(matches!(scan.feed("}] tail"), ScanStep::Done { end: 1 }));
        assert_eq!(scan.text, "{\"a\": \"}\"\n}");
    }
}
