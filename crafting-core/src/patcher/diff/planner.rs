//! Planning: each hunk placed exactly in the file, all in memory.

use std::fs;
use std::io;
use std::path::Path;

use super::{Change, Diff, DiffError, FilePatch, Hunk, HunkLine, LineKind};

/// Computes every file's new content, reading the worktree but writing nothing.
pub(super) fn changes(diff: &Diff, worktree: &Path) -> Result<Vec<Change>, DiffError> {
    let mut files = Workspace::new(worktree);
    for patch in &diff.files {
        match (&patch.old_path, &patch.new_path) {
            (None, Some(path)) => plan_create(&mut files, path, patch)?,
            (Some(path), None) => plan_delete(&mut files, path, patch)?,
            (Some(path), Some(_)) => plan_modify(&mut files, path, patch)?,
            (None, None) => {
                return Err(DiffError::malformed(patch.line, "both file names are /dev/null"));
            }
        }
    }
    Ok(files.changes())
}

/// File contents as the plan goes: read once from the worktree, then kept
/// in memory so several sections for one file apply in turn.
struct Workspace<'a> {
    root: &'a Path,
    /// The files read so far, in the order first touched.
    files: Vec<Tracked>,
}

/// One file's content on disk and as the plan has it now; `None` for no file.
struct Tracked {
    path: String,
    disk: Option<Vec<u8>>,
    now: Option<Vec<u8>>,
}

impl<'a> Workspace<'a> {
    fn new(root: &'a Path) -> Self {
        Workspace { root, files: Vec::new() }
    }

    fn get(&mut self, path: &str) -> Result<Option<Vec<u8>>, DiffError> {
        if let Some(file) = self.files.iter().find(|f| f.path == path) {
            return Ok(file.now.clone());
        }
        let disk = match fs::read(self.root.join(path)) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(DiffError::io("read", path, e)),
        };
        self.files.push(Tracked { path: path.to_owned(), disk: disk.clone(), now: disk.clone() });
        Ok(disk)
    }

    fn set(&mut self, path: &str, content: Option<Vec<u8>>) {
        if let Some(file) = self.files.iter_mut().find(|f| f.path == path) {
            file.now = content;
        }
    }

    fn changes(self) -> Vec<Change> {
        let changed = self.files.into_iter().filter(|f| f.disk != f.now);
        changed.map(|f| Change { path: f.path, content: f.now }).collect()
    }
}

/// A file created from `/dev/null`: every hunk line must be an addition.
fn plan_create(files: &mut Workspace, path: &str, patch: &FilePatch) -> Result<(), DiffError> {
    if files.get(path)?.is_some() {
        return Err(DiffError::does_not_apply(
            path,
            "the diff creates the file, but it already exists",
        ));
    }
    let mut content = Vec::new();
    for line in patch.hunks.iter().flat_map(|h| &h.lines) {
        if line.kind != LineKind::Added {
            return Err(DiffError::does_not_apply(
                path,
                "the diff creates the file, yet its hunk holds context or removed lines",
            ));
        }
        content.extend(line.bytes());
    }
    files.set(path, Some(content));
    Ok(())
}

/// A file deleted to `/dev/null`: the removed lines must be the whole file.
fn plan_delete(files: &mut Workspace, path: &str, patch: &FilePatch) -> Result<(), DiffError> {
    let Some(current) = files.get(path)? else {
        return Err(DiffError::does_not_apply(
            path,
            "the diff deletes the file, but it does not exist",
        ));
    };
    let mut expected = Vec::new();
    for line in patch.hunks.iter().flat_map(|h| &h.lines) {
        if line.kind == LineKind::Added {
            return Err(DiffError::does_not_apply(
                path,
                "the diff deletes the file, yet adds lines",
            ));
        }
        expected.extend(line.bytes());
    }
    if expected != current {
        return Err(DiffError::does_not_apply(
            path,
            "the diff deletes the file, but its removed lines are not the whole file as it is",
        ));
    }
    files.set(path, None);
    Ok(())
}

/// A file changed in place: its hunks applied to the current content.
fn plan_modify(files: &mut Workspace, path: &str, patch: &FilePatch) -> Result<(), DiffError> {
    let Some(current) = files.get(path)? else {
        return Err(DiffError::does_not_apply(
            path,
            "the file does not exist (paths in a diff are relative to the repository root)",
        ));
    };
    let updated =
        apply_hunks(&current, &patch.hunks).map_err(|why| DiffError::does_not_apply(path, why))?;
    files.set(path, Some(updated));
    Ok(())
}

/// A hunk placed in the original file: lines `start..end` become `new`.
struct Placed {
    start: usize,
    end: usize,
    new: Vec<u8>,
}

/// Applies hunks to a file's bytes; each must match exactly somewhere not
/// claimed by another hunk.
fn apply_hunks(content: &[u8], hunks: &[Hunk]) -> Result<Vec<u8>, String> {
    let lines: Vec<&[u8]> = content.split_inclusive(|b| *b == b'\n').collect();
    let mut placed: Vec<Placed> = Vec::new();
    let mut drift: isize = 0;
    for (n, hunk) in hunks.iter().enumerate() {
        let old: Vec<Vec<u8>> =
            hunk.lines.iter().filter(|l| l.is_old()).map(HunkLine::bytes).collect();
        let new: Vec<u8> =
            hunk.lines.iter().filter(|l| l.is_new()).flat_map(HunkLine::bytes).collect();
        let stated = hunk.old_start.map(|s| if old.is_empty() { s } else { s.saturating_sub(1) });
        let expected = stated.map(|s| (s as isize + drift).max(0) as usize);
        let start = locate(&lines, &old, hunk, expected, &placed)
            .map_err(|why| format!("hunk {} (line {} of the diff) {why}", n + 1, hunk.line))?;
        if let Some(s) = stated {
            drift = start as isize - s as isize;
        }
        placed.push(Placed { start, end: start + old.len(), new });
    }
    placed.sort_by_key(|p| p.start);
    let mut out = Vec::with_capacity(content.len());
    let mut at = 0;
    for p in placed {
        lines[at..p.start].iter().for_each(|l| out.extend_from_slice(l));
        out.extend_from_slice(&p.new);
        at = p.end;
    }
    lines[at..].iter().for_each(|l| out.extend_from_slice(l));
    Ok(out)
}

/// Finds where a hunk's old lines sit. Among exact matches, prefer one that
/// touches the file's start or end when the hunk's context says it does
/// (less context on one side), then the one nearest the expected line.
fn locate(
    lines: &[&[u8]],
    old: &[Vec<u8>],
    hunk: &Hunk,
    expected: Option<usize>,
    placed: &[Placed],
) -> Result<usize, String> {
    if old.is_empty() {
        return place_insertion(lines.len(), expected, placed);
    }
    let (leading, trailing) = context_sides(hunk);
    let candidates: Vec<usize> = (0..=lines.len().saturating_sub(old.len()))
        .filter(|&p| p + old.len() <= lines.len())
        .filter(|&p| lines[p..p + old.len()].iter().zip(old).all(|(a, b)| *a == b.as_slice()))
        .collect();
    if candidates.is_empty() {
        return Err(mismatch_hint(lines, old, expected));
    }
    let free: Vec<usize> = candidates
        .into_iter()
        .filter(|&p| !placed.iter().any(|q| p < q.end && q.start < p + old.len()))
        .collect();
    if free.is_empty() {
        return Err("only matches where another hunk already applies".to_owned());
    }
    let score = |p: usize| {
        let misses_start = leading < trailing && p != 0;
        let misses_end = trailing < leading && p + old.len() != lines.len();
        let distance = expected.map_or(0, |e| p.abs_diff(e));
        (usize::from(misses_start) + usize::from(misses_end), distance)
    };
    let best = free.iter().map(|&p| score(p)).min().unwrap_or_default();
    let winners: Vec<usize> = free.into_iter().filter(|&p| score(p) == best).collect();
    if expected.is_none() && winners.len() > 1 {
        return Err(format!(
            "matches at {} places and its header gives no line number",
            winners.len()
        ));
    }
    Ok(winners[0])
}

/// Where a hunk without old lines goes: exactly at its stated line.
fn place_insertion(
    len: usize,
    expected: Option<usize>,
    placed: &[Placed],
) -> Result<usize, String> {
    let Some(at) = expected else {
        return Err("has no context, no removed lines and no line number".to_owned());
    };
    if at > len {
        return Err(format!("adds lines after line {at}, but the file has {len} lines"));
    }
    if placed.iter().any(|q| q.start < at && at < q.end) {
        return Err("adds lines inside the lines of another hunk".to_owned());
    }
    Ok(at)
}

/// The number of context lines before the first change and after the last.
fn context_sides(hunk: &Hunk) -> (usize, usize) {
    let is_context = |l: &&HunkLine| l.kind == LineKind::Context;
    let leading = hunk.lines.iter().take_while(is_context).count();
    let trailing = hunk.lines.iter().rev().take_while(is_context).count();
    if leading == hunk.lines.len() { (0, 0) } else { (leading, trailing) }
}

/// Explains a failed match: the first line that differs at the expected
/// place, and whether only a missing final newline is to blame.
fn mismatch_hint(lines: &[&[u8]], old: &[Vec<u8>], expected: Option<usize>) -> String {
    let mut why = "does not match the file".to_owned();
    let Some(at) = expected.filter(|&e| e < lines.len()) else {
        return why;
    };
    let differing =
        old.iter().enumerate().find(|(i, want)| lines.get(at + i) != Some(&want.as_slice()));
    if let Some((i, want)) = differing {
        let found = lines.get(at + i).map_or("<end of file>".to_owned(), |l| show(l));
        why.push_str(&format!(
            ": line {} reads {found}, the hunk expects {}",
            at + i + 1,
            show(want)
        ));
        let last = at + i + 1 == lines.len() && i + 1 == old.len();
        if last && want.strip_suffix(b"\n") == Some(lines[at + i]) {
            why.push_str(
                " (the file ends without a newline; the hunk needs `\\ No newline at end of file`)",
            );
        }
    }
    why
}

/// A line for an error message: quoted, cut to 80 characters.
fn show(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let text: String = text.trim_end_matches('\n').chars().take(80).collect();
    format!("{text:?}")
}
