//! Reading diff text into file sections and hunks, tolerantly.

use std::sync::LazyLock;

use regex::Regex;

use super::{DiffError, FilePatch, Hunk, HunkLine, LineKind};

/// Reads every file section of a diff.
pub(super) fn files(text: &str) -> Result<Vec<FilePatch>, DiffError> {
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    Reader { lines, pos: 0 }.read_all()
}

static HUNK_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@").expect("valid hunk header pattern")
});

/// A header line without the `\r` a CRLF diff leaves on it.
fn header(line: &str) -> &str {
    line.strip_suffix('\r').unwrap_or(line)
}

/// Walks the diff's lines once.
struct Reader<'a> {
    lines: Vec<&'a str>,
    pos: usize,
}

/// What the extended header lines of a `diff --git` section said.
#[derive(Default)]
struct GitHeader {
    old_mode: Option<u32>,
    new_mode: Option<u32>,
    created: bool,
    deleted: bool,
}

impl<'a> Reader<'a> {
    fn line(&self, i: usize) -> Option<&'a str> {
        self.lines.get(i).copied()
    }

    fn read_all(&mut self) -> Result<Vec<FilePatch>, DiffError> {
        let mut files = Vec::new();
        while let Some(line) = self.line(self.pos) {
            let line = header(line);
            if line.starts_with("diff --git ") {
                files.push(self.git_section()?);
            } else if self.starts_plain_section(self.pos) {
                files.push(self.plain_section()?);
            } else if line.starts_with("@@ ") || line == "@@" {
                return Err(DiffError::malformed(self.pos + 1, "hunk before any file header"));
            } else {
                self.pos += 1;
            }
        }
        Ok(files)
    }

    /// A `--- x` line followed by `+++ y` and a hunk header.
    fn starts_plain_section(&self, i: usize) -> bool {
        let at = |j: usize| self.line(j).map(header).unwrap_or_default();
        at(i).starts_with("--- ") && at(i + 1).starts_with("+++ ") && at(i + 2).starts_with("@@")
    }

    fn starts_section(&self, i: usize) -> bool {
        self.line(i).is_some_and(|l| header(l).starts_with("diff --git "))
            || self.starts_plain_section(i)
    }

    /// A section opened by `--- `/`+++ ` lines without a `diff --git` line.
    fn plain_section(&mut self) -> Result<FilePatch, DiffError> {
        let start = self.pos + 1;
        let (old_path, new_path) = self.names(start)?;
        let hunks = self.hunks()?;
        Ok(FilePatch { old_path, new_path, old_mode: None, new_mode: None, hunks, line: start })
    }

    /// A section opened by `diff --git a/x b/x` and git's extended headers.
    fn git_section(&mut self) -> Result<FilePatch, DiffError> {
        let start = self.pos + 1;
        let fallback = git_line_names(&header(self.lines[self.pos])["diff --git ".len()..]);
        self.pos += 1;
        let head = self.extended_header(fallback.as_ref().map_or("", |n| n.1.as_str()))?;
        let has_names = self.line(self.pos).is_some_and(|l| header(l).starts_with("--- "))
            && self.line(self.pos + 1).is_some_and(|l| header(l).starts_with("+++ "));
        let (mut old_path, mut new_path) = if has_names {
            self.names(start)?
        } else {
            let (old, new) = fallback.ok_or_else(|| {
                DiffError::malformed(start, "cannot read the file names of this `diff --git` line")
            })?;
            (Some(old), Some(new))
        };
        if head.created {
            old_path = None;
        }
        if head.deleted {
            new_path = None;
        }
        let hunks = self.hunks()?;
        let patch = FilePatch {
            old_path,
            new_path,
            old_mode: head.old_mode,
            new_mode: head.new_mode,
            hunks,
            line: start,
        };
        if patch.hunks.is_empty()
            && !head.created
            && !head.deleted
            && patch.old_mode == patch.new_mode
        {
            return Err(DiffError::malformed(start, format!("no hunks for {:?}", patch.path())));
        }
        Ok(patch)
    }

    /// Reads git's extended header lines (modes, index, renames, binary).
    fn extended_header(&mut self, path: &str) -> Result<GitHeader, DiffError> {
        let mut head = GitHeader::default();
        while let Some(line) = self.line(self.pos) {
            let line = header(line);
            let line_no = self.pos + 1;
            if let Some(m) = line.strip_prefix("old mode ") {
                head.old_mode = Some(mode(m, line_no)?);
            } else if let Some(m) = line.strip_prefix("new mode ") {
                head.new_mode = Some(mode(m, line_no)?);
            } else if let Some(m) = line.strip_prefix("deleted file mode ") {
                head.old_mode = Some(mode(m, line_no)?);
                head.deleted = true;
            } else if let Some(m) = line.strip_prefix("new file mode ") {
                head.new_mode = Some(mode(m, line_no)?);
                head.created = true;
            } else if let Some(rest) = line.strip_prefix("index ") {
                if let Some((_, m)) = rest.split_once(' ') {
                    let m = mode(m, line_no)?;
                    head.old_mode.get_or_insert(m);
                    head.new_mode.get_or_insert(m);
                }
            } else if line.starts_with("rename ") || line.starts_with("copy ") {
                let named = if path.is_empty() { line.trim() } else { path };
                return Err(DiffError::unsupported(
                    named,
                    "renames and copies are not supported; delete and create the file instead",
                ));
            } else if line.starts_with("GIT binary patch") || line.starts_with("Binary files ") {
                return Err(DiffError::unsupported(path, "binary patches are not supported"));
            } else if !line.starts_with("similarity index ")
                && !line.starts_with("dissimilarity index ")
            {
                break;
            }
            self.pos += 1;
        }
        Ok(head)
    }

    /// Reads the `---`/`+++` pair at the current line.
    fn names(&mut self, start: usize) -> Result<(Option<String>, Option<String>), DiffError> {
        let old = header_name(&header(self.lines[self.pos])[4..], start)?;
        let new = header_name(&header(self.lines[self.pos + 1])[4..], start + 1)?;
        self.pos += 2;
        let (old, new) = strip_prefixes(old, new);
        if old.is_none() && new.is_none() {
            return Err(DiffError::malformed(start, "both file names are /dev/null"));
        }
        if let (Some(o), Some(n)) = (&old, &new)
            && o != n
        {
            return Err(DiffError::unsupported(
                n,
                format!(
                    "the old name {o:?} and the new name {n:?} differ; renames are not supported"
                ),
            ));
        }
        Ok((old, new))
    }

    /// Reads hunks until the next file section or the end; other lines
    /// between hunks are skipped.
    fn hunks(&mut self) -> Result<Vec<Hunk>, DiffError> {
        let mut hunks = Vec::new();
        while let Some(line) = self.line(self.pos) {
            let line = header(line);
            if line.starts_with("@@@") {
                return Err(DiffError::malformed(self.pos + 1, "combined diffs are not supported"));
            }
            if line.starts_with("@@") {
                hunks.push(self.hunk()?);
            } else if self.starts_section(self.pos) {
                break;
            } else {
                self.pos += 1;
            }
        }
        Ok(hunks)
    }

    /// Reads one hunk: by its counts when they fit, else up to the first
    /// line that is no hunk line.
    fn hunk(&mut self) -> Result<Hunk, DiffError> {
        let line_no = self.pos + 1;
        let head = header(self.lines[self.pos]);
        let caps = HUNK_HEADER.captures(head);
        let number =
            |i: usize| caps.as_ref().and_then(|c| c.get(i)).and_then(|m| m.as_str().parse().ok());
        let count =
            |i: usize| caps.as_ref().map(|c| c.get(i).map_or(Some(1), |m| m.as_str().parse().ok()));
        let old_start: Option<usize> = number(1);
        let counts = match (count(2), count(4)) {
            (Some(Some(o)), Some(Some(n))) => Some((o, n)),
            _ => None,
        };
        self.pos += 1;
        let (lines, end) =
            counts.and_then(|(o, n)| self.counted_body(o, n)).unwrap_or_else(|| self.loose_body());
        self.pos = end;
        if lines.is_empty() {
            return Err(DiffError::malformed(line_no, "the hunk has no lines"));
        }
        let lines = mark_no_newline(lines, line_no)?;
        Ok(Hunk { old_start, lines, line: line_no })
    }

    /// The hunk body read by the header's counts, when the lines fit them:
    /// the raw lines and the index after them.
    fn counted_body(&self, old: usize, new: usize) -> Option<(Vec<&'a str>, usize)> {
        let (mut old, mut new) = (old, new);
        let mut i = self.pos;
        let mut out = Vec::new();
        while old > 0 || new > 0 {
            let line = self.line(i)?;
            if header(line).starts_with("@@") || self.starts_section(i) {
                return None;
            }
            match line.as_bytes().first() {
                Some(b'\\') => {}
                Some(b'-') if old > 0 => old -= 1,
                Some(b'+') if new > 0 => new -= 1,
                Some(b' ') | None if old > 0 && new > 0 => (old, new) = (old - 1, new - 1),
                Some(b'\r') if line == "\r" && old > 0 && new > 0 => {
                    (old, new) = (old - 1, new - 1)
                }
                _ => return None,
            }
            out.push(line);
            i += 1;
        }
        while let Some(line) = self.line(i).filter(|l| l.starts_with('\\')) {
            out.push(line);
            i += 1;
        }
        // More hunk lines right after mean the counts were too small.
        match self.line(i) {
            Some(next) if is_change_line(next) && !self.starts_section(i) => None,
            _ => Some((out, i)),
        }
    }

    /// The hunk body read up to the first line that is no hunk line; blank
    /// lines at its end are taken as separators, not context.
    fn loose_body(&self) -> (Vec<&'a str>, usize) {
        let mut i = self.pos;
        let mut out = Vec::new();
        while let Some(line) = self.line(i) {
            if header(line).starts_with("@@") || self.starts_section(i) {
                break;
            }
            // `-- ` followed by a version closes a `git format-patch` mail.
            let signature = line == "-- " && !self.line(i + 1).is_some_and(is_body_line);
            if !(is_body_line(line) || line.starts_with('\\')) || signature {
                break;
            }
            out.push(line);
            i += 1;
        }
        let end = i;
        while out.last().is_some_and(|l| l.is_empty() || *l == "\r") {
            out.pop();
        }
        (out, end)
    }
}

/// Whether a line can be part of a hunk body: ` x`, `-x`, `+x` or a blank
/// line (a context line whose space was trimmed).
fn is_body_line(line: &str) -> bool {
    matches!(line.as_bytes().first(), None | Some(b' ' | b'-' | b'+')) || line == "\r"
}

/// Whether a line continues a hunk for sure: a context, removed or added
/// line that is not blank (blank lines also separate a diff from prose) and
/// not a mail signature.
fn is_change_line(line: &str) -> bool {
    matches!(line.as_bytes().first(), Some(b' ' | b'-' | b'+')) && line != "-- "
}

/// Turns raw body lines into hunk lines, attaching each `\ No newline at end
/// of file` to the line before it.
fn mark_no_newline(raw: Vec<&str>, line_no: usize) -> Result<Vec<HunkLine>, DiffError> {
    let mut out: Vec<HunkLine> = Vec::with_capacity(raw.len());
    let (mut old_closed, mut new_closed) = (false, false);
    for (i, line) in raw.into_iter().enumerate() {
        if line.starts_with('\\') {
            let last = out.last_mut().ok_or_else(|| {
                DiffError::malformed(
                    line_no + 1 + i,
                    "`\\ No newline` marker without a line before it",
                )
            })?;
            last.newline = false;
            old_closed |= last.is_old();
            new_closed |= last.is_new();
            continue;
        }
        let (kind, text) = match line.as_bytes().first() {
            Some(b'-') => (LineKind::Removed, &line[1..]),
            Some(b'+') => (LineKind::Added, &line[1..]),
            Some(b' ') => (LineKind::Context, &line[1..]),
            _ => (LineKind::Context, line),
        };
        let hunk_line = HunkLine { kind, text: text.to_owned(), newline: true };
        if (old_closed && hunk_line.is_old()) || (new_closed && hunk_line.is_new()) {
            return Err(DiffError::malformed(
                line_no + 1 + i,
                "a line follows the last line of the file (`\\ No newline at end of file`)",
            ));
        }
        out.push(hunk_line);
    }
    Ok(out)
}

/// Parses an octal git mode such as `100644`.
fn mode(text: &str, line: usize) -> Result<u32, DiffError> {
    u32::from_str_radix(text.trim(), 8)
        .map_err(|_| DiffError::malformed(line, format!("{:?} is not a file mode", text.trim())))
}

/// The name on a `---`/`+++` line: quoted, or up to a tab (timestamps
/// follow one), trailing spaces trimmed when there is no tab. `None` for
/// `/dev/null`.
fn header_name(text: &str, line: usize) -> Result<Option<String>, DiffError> {
    let name = if text.starts_with('"') {
        let (name, _) = unquote(text)
            .ok_or_else(|| DiffError::malformed(line, "unterminated quoted file name"))?;
        name
    } else {
        match text.split_once('\t') {
            Some((name, _)) => name.to_owned(),
            None => text.trim_end().to_owned(),
        }
    };
    if name.is_empty() {
        return Err(DiffError::malformed(line, "empty file name"));
    }
    Ok(if name == "/dev/null" { None } else { Some(name) })
}

/// Removes one `a/` and one `b/` prefix: from both names when both carry
/// them (or the other is `/dev/null`). Otherwise names that already agree
/// are kept as written, and names that agree once one carries a prefix
/// less (`--- a/x`, `+++ x`) lose it.
fn strip_prefixes(old: Option<String>, new: Option<String>) -> (Option<String>, Option<String>) {
    let strip = |name: &Option<String>, prefix: &str| {
        name.as_deref().map(|n| n.strip_prefix(prefix).unwrap_or(n).to_owned())
    };
    let old_ok = old.as_deref().is_none_or(|o| o.starts_with("a/"));
    let new_ok = new.as_deref().is_none_or(|n| n.starts_with("b/"));
    if (old_ok && new_ok) || old != new {
        let (stripped_old, stripped_new) = (strip(&old, "a/"), strip(&new, "b/"));
        if (old_ok && new_ok) || stripped_old == stripped_new {
            return (stripped_old, stripped_new);
        }
    }
    (old, new)
}

/// The two names of a `diff --git` line, prefixes removed. Unquoted names
/// with spaces are split where both halves name the same file, as git does.
fn git_line_names(rest: &str) -> Option<(String, String)> {
    if rest.starts_with('"') {
        let (old, after) = unquote(rest)?;
        let after = after.strip_prefix(' ')?;
        let new = if after.starts_with('"') { unquote(after)?.0 } else { after.to_owned() };
        let (old, new) = strip_prefixes(Some(old), Some(new));
        return Some((old?, new?));
    }
    for (i, _) in rest.match_indices(' ') {
        let (old, new) = strip_prefixes(Some(rest[..i].to_owned()), Some(rest[i + 1..].to_owned()));
        if old == new {
            return Some((old?, new?));
        }
    }
    None
}

/// Reads a C-style quoted name as git writes it; returns it and the rest.
fn unquote(text: &str) -> Option<(String, &str)> {
    let body = text.strip_prefix('"')?;
    let mut bytes = Vec::new();
    let mut iter = body.bytes().enumerate();
    while let Some((i, b)) = iter.next() {
        match b {
            b'"' => return Some((String::from_utf8_lossy(&bytes).into_owned(), &body[i + 1..])),
            b'\\' => {
                let (_, esc) = iter.next()?;
                let value = match esc {
                    b'a' => 7,
                    b'b' => 8,
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'v' => 11,
                    b'f' => 12,
                    b'r' => b'\r',
                    b'0'..=b'3' => {
                        let d2 = iter.next()?.1;
                        let d3 = iter.next()?.1;
                        let digits = [esc, d2, d3];
                        u8::from_str_radix(std::str::from_utf8(&digits).ok()?, 8).ok()?
                    }
                    other => other,
                };
                bytes.push(value);
            }
            other => bytes.push(other),
        }
    }
    None
}
