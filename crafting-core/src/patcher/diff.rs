//! Unified diffs: read them tolerantly, check them strictly, apply them
//! without fuzz, and render new ones.
//!
//! Diffs reach the patch loop from two sources: our own renderer
//! ([`unified`]), fed by tools' fixes, and language models, whose diffs are
//! often sloppy. [`parse`] therefore accepts `git diff` output as well as
//! bare `--- a/x` / `+++ b/x` sections, wrong hunk counts, missing final
//! newlines, `a/`/`b/` prefixes or none, and chatter around the diff (code
//! fences, explanations), which it skips.
//!
//! Applying is strict. [`check_paths`] refuses anything that could reach
//! outside the worktree or into git's own files, before any file is read.
//! [`plan`] computes every new file content in memory: each hunk's context and
//! removed lines must match the file byte for byte (CRLF included). A hunk may
//! sit at another line than its header says, as `git apply` allows; among
//! several matches the one nearest the header wins. If any hunk of any file
//! fails, the whole plan fails. Only then does [`write()`] touch the disk,
//! checking each path again just before writing it. [`apply`] runs all four
//! steps.
//!
//! Not supported, each refused with a message saying so: binary patches,
//! renames and copies, mode changes, new executables, symbolic links and
//! submodules.

use std::io;
use std::path::Path;

mod check;
mod disk;
mod planner;
mod read;
mod render;

/// The largest diff [`parse`] accepts unless told otherwise: 1 MiB.
pub const DEFAULT_MAX_DIFF_BYTES: usize = 1024 * 1024;

/// Why a diff was refused.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// The diff is longer than the limit given to [`parse`].
    #[error("the diff is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// The diff's length in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The text holds no file section at all.
    #[error("no file changes found in the diff")]
    NoChanges,
    /// The text could not be read as a diff.
    #[error("line {line} of the diff: {why}")]
    Malformed {
        /// 1-based line of the diff text.
        line: usize,
        /// What is wrong there.
        why: String,
    },
    /// A path the diff names could reach outside the worktree or into git's files.
    #[error("refusing to touch {path:?}: {why}")]
    UnsafePath {
        /// The path as the diff names it.
        path: String,
        /// Which rule it breaks.
        why: String,
    },
    /// The diff asks for something the patcher does not do (binary, rename, mode change).
    #[error("cannot apply the change to {path:?}: {why}")]
    Unsupported {
        /// The path as the diff names it.
        path: String,
        /// What is not supported.
        why: String,
    },
    /// The file does not read the way the diff expects.
    #[error("the diff does not apply to {path:?}: {why}")]
    DoesNotApply {
        /// The repository-relative path.
        path: String,
        /// Which hunk failed and how.
        why: String,
    },
    /// Reading or writing the worktree failed.
    #[error("cannot {action} {path:?}: {source}")]
    Io {
        /// What was being done: `read`, `write`, `delete`, ...
        action: &'static str,
        /// The repository-relative path.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl DiffError {
    fn malformed(line: usize, why: impl Into<String>) -> Self {
        DiffError::Malformed { line, why: why.into() }
    }

    fn unsafe_path(path: &str, why: impl Into<String>) -> Self {
        DiffError::UnsafePath { path: path.to_owned(), why: why.into() }
    }

    fn unsupported(path: &str, why: impl Into<String>) -> Self {
        DiffError::Unsupported { path: path.to_owned(), why: why.into() }
    }

    fn does_not_apply(path: &str, why: impl Into<String>) -> Self {
        DiffError::DoesNotApply { path: path.to_owned(), why: why.into() }
    }

    fn io(action: &'static str, path: &str, source: io::Error) -> Self {
        DiffError::Io { action, path: path.to_owned(), source }
    }
}

/// A parsed diff: one entry per file section, in the order written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    /// The file sections. The same file may appear twice; its sections then
    /// apply one after the other.
    pub files: Vec<FilePatch>,
}

/// The changes to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePatch {
    /// The path before the change, with one `a/` prefix removed; `None` when
    /// the file is created (`/dev/null`).
    pub old_path: Option<String>,
    /// The path after the change, with one `b/` prefix removed; `None` when
    /// the file is deleted (`/dev/null`).
    pub new_path: Option<String>,
    /// The mode git gives the file before the change, when the diff says.
    pub old_mode: Option<u32>,
    /// The mode git gives the file after the change, when the diff says
    /// (`new file mode`, `new mode`).
    pub new_mode: Option<u32>,
    /// The hunks in the order written.
    pub hunks: Vec<Hunk>,
    /// 1-based line of the diff text where the section starts.
    pub line: usize,
}

impl FilePatch {
    /// The path this section is about: the new path, else the old one.
    pub fn path(&self) -> &str {
        self.new_path.as_deref().or(self.old_path.as_deref()).unwrap_or_default()
    }
}

/// One `@@` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    /// The 1-based old start line from the header; `None` when the header
    /// gave no numbers (`@@ @@`). For a hunk without old lines it is the
    /// line after which the new lines go (0: the start of the file).
    pub old_start: Option<usize>,
    /// The lines of the hunk.
    pub lines: Vec<HunkLine>,
    /// 1-based line of the diff text holding the `@@` header.
    pub line: usize,
}

/// What a hunk line does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// Present before and after (` `).
    Context,
    /// Present only before (`-`).
    Removed,
    /// Present only after (`+`).
    Added,
}

/// One line of a hunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HunkLine {
    /// Context, removed or added.
    pub kind: LineKind,
    /// The line without its marker and without the `\n`; a `\r` of a CRLF
    /// file stays.
    pub text: String,
    /// False when `\ No newline at end of file` follows the line.
    pub newline: bool,
}

impl HunkLine {
    /// The line's bytes as they appear in the file.
    fn bytes(&self) -> Vec<u8> {
        let mut out = self.text.as_bytes().to_vec();
        if self.newline {
            out.push(b'\n');
        }
        out
    }

    fn is_old(&self) -> bool {
        self.kind != LineKind::Added
    }

    fn is_new(&self) -> bool {
        self.kind != LineKind::Removed
    }
}

/// A file's new state, computed by [`plan`] and written by [`write()`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The repository-relative path.
    pub path: String,
    /// The new content; `None` deletes the file.
    pub content: Option<Vec<u8>>,
}

/// Parses a diff, refusing it unread when it is longer than `max_bytes`.
///
/// Lines before the first file section, and between hunks, are skipped.
/// Hunk line counts are used when they fit the lines that follow and ignored
/// otherwise; a hunk then runs until the first line that is no hunk line.
pub fn parse(text: &str, max_bytes: usize) -> Result<Diff, DiffError> {
    if text.len() > max_bytes {
        return Err(DiffError::TooLarge { size: text.len(), limit: max_bytes });
    }
    if let Some(n) = text.lines().position(|l| l.contains('\0')) {
        return Err(DiffError::malformed(n + 1, "a NUL byte: binary content is not patched"));
    }
    let files = read::files(text)?;
    if files.is_empty() {
        return Err(DiffError::NoChanges);
    }
    Ok(Diff { files })
}

/// Checks every path and mode in the diff against the worktree: nothing
/// absolute, nothing climbing out, nothing in `.git`, no symbolic link on the
/// way, no symbolic link, submodule or executable created, no mode changed.
pub fn check_paths(diff: &Diff, worktree: &Path) -> Result<(), DiffError> {
    for patch in &diff.files {
        check::modes(patch)?;
        for path in [&patch.old_path, &patch.new_path].into_iter().flatten() {
            check::path_text(path)?;
            check::on_disk(worktree, path)?;
        }
    }
    Ok(())
}

/// Computes the new content of every file the diff touches, reading the
/// worktree but writing nothing. Runs [`check_paths`] first.
///
/// Files whose content ends up as it was are left out, so a diff that
/// changes nothing gives an empty list.
pub fn plan(diff: &Diff, worktree: &Path) -> Result<Vec<Change>, DiffError> {
    check_paths(diff, worktree)?;
    planner::changes(diff, worktree)
}

/// Writes planned changes into the worktree. Each path is checked again
/// right before it is written; existing files are replaced through a
/// temporary file and keep their permissions.
///
/// Changes are written in order; when one fails, those before it stay
/// written (the worktree is a throwaway checkout).
pub fn write(changes: &[Change], worktree: &Path) -> Result<(), DiffError> {
    for change in changes {
        check::path_text(&change.path)?;
        check::on_disk(worktree, &change.path)?;
        match &change.content {
            None => disk::delete(worktree, &change.path)?,
            Some(bytes) => disk::write(worktree, &change.path, bytes)?,
        }
    }
    Ok(())
}

/// Parses, checks, plans and writes a diff; returns what was written.
pub fn apply(text: &str, worktree: &Path, max_bytes: usize) -> Result<Vec<Change>, DiffError> {
    let diff = parse(text, max_bytes)?;
    let changes = plan(&diff, worktree)?;
    write(&changes, worktree)?;
    Ok(changes)
}

/// The repository-relative paths the diff changes, each once, in the order
/// the diff names them.
pub fn touched(diff: &Diff) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for patch in &diff.files {
        for path in [&patch.old_path, &patch.new_path].into_iter().flatten() {
            if !out.contains(path) {
                out.push(path.clone());
            }
        }
    }
    out
}

/// Renders the change of an existing file from `old` to `new` as a
/// `diff --git a/<path> b/<path>` unified diff with three lines of context,
/// which [`apply`] and `git apply` accept. Empty when nothing changed.
pub fn unified(path: &str, old: &str, new: &str) -> String {
    unified_change(path, Some(old), Some(new))
}

/// Like [`unified`], with `None` for a file that does not exist: `old` of
/// `None` creates the file, `new` of `None` deletes it.
pub fn unified_change(path: &str, old: Option<&str>, new: Option<&str>) -> String {
    render::change(path, old, new)
}

#[cfg(test)]
mod tests;
