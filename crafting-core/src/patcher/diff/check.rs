//! The rules paths and modes must follow before anything is read or written.

use std::fs;
use std::io;
use std::path::Path;

use super::{DiffError, FilePatch};

/// The git mode of a symbolic link.
const MODE_SYMLINK: u32 = 0o120000;
/// The git mode of a submodule (a gitlink).
const MODE_GITLINK: u32 = 0o160000;
/// The git mode of an ordinary file.
const MODE_FILE: u32 = 0o100644;
/// The git mode of an executable file.
const MODE_EXECUTABLE: u32 = 0o100755;

/// Refuses symbolic links, submodules, executables and mode changes.
pub(super) fn modes(patch: &FilePatch) -> Result<(), DiffError> {
    let path = patch.path();
    for mode in [patch.old_mode, patch.new_mode].into_iter().flatten() {
        if mode == MODE_SYMLINK {
            return Err(DiffError::unsafe_path(
                path,
                "symbolic links cannot be created or changed",
            ));
        }
        if mode == MODE_GITLINK {
            return Err(DiffError::unsafe_path(path, "submodules cannot be created or changed"));
        }
        if mode != MODE_FILE && mode != MODE_EXECUTABLE {
            return Err(DiffError::unsupported(
                path,
                format!("file mode {mode:o} is not supported"),
            ));
        }
    }
    let created = patch.old_path.is_none();
    if created && patch.new_mode == Some(MODE_EXECUTABLE) {
        return Err(DiffError::unsupported(path, "creating executable files is not supported"));
    }
    if let (Some(old), Some(new)) = (patch.old_mode, patch.new_mode)
        && old != new
        && patch.old_path.is_some()
        && patch.new_path.is_some()
    {
        return Err(DiffError::unsupported(
            path,
            format!("changing the file mode from {old:o} to {new:o} is not supported"),
        ));
    }
    Ok(())
}

/// The rules a path must follow as text: relative, normalised, no `..`,
/// nothing named `.git`, no NUL or backslash.
pub(super) fn path_text(path: &str) -> Result<(), DiffError> {
    if path.contains('\0') {
        return Err(DiffError::unsafe_path(path, "the path holds a NUL byte"));
    }
    if path.starts_with('/') {
        return Err(DiffError::unsafe_path(path, "absolute paths are not allowed"));
    }
    if path.contains('\\') {
        return Err(DiffError::unsafe_path(path, "backslashes are not allowed in paths"));
    }
    for part in path.split('/') {
        match part {
            ".." => return Err(DiffError::unsafe_path(path, "`..` is not allowed in paths")),
            "" | "." => {
                return Err(DiffError::unsafe_path(
                    path,
                    "the path is not normalised (empty or `.` component)",
                ));
            }
            p if p.eq_ignore_ascii_case(".git") => {
                return Err(DiffError::unsafe_path(path, "files in `.git` must not be changed"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Walks the path from the worktree root without following links: every
/// existing component must be a real folder, the last a regular file. Parts
/// that do not exist yet are fine: they will be created.
pub(super) fn on_disk(worktree: &Path, path: &str) -> Result<(), DiffError> {
    let parts: Vec<&str> = path.split('/').collect();
    let mut current = worktree.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        current.push(part);
        let shown = parts[..=i].join("/");
        let meta = match fs::symlink_metadata(&current) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(DiffError::io("inspect", &shown, e)),
        };
        let last = i + 1 == parts.len();
        if meta.file_type().is_symlink() {
            let why = if last {
                "the file is a symbolic link".to_owned()
            } else {
                format!("{shown:?} is a symbolic link")
            };
            return Err(DiffError::unsafe_path(path, why));
        }
        if !last && !meta.is_dir() {
            return Err(DiffError::does_not_apply(path, format!("{shown:?} is not a folder")));
        }
        if last && meta.is_dir() {
            return Err(DiffError::does_not_apply(path, "it is a folder"));
        }
        if last && !meta.is_file() {
            return Err(DiffError::unsafe_path(path, "it is not a regular file"));
        }
    }
    Ok(())
}
