//! Writing planned contents into the worktree.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{DiffError, check};

/// Deletes a file the plan removes.
pub(super) fn delete(worktree: &Path, path: &str) -> Result<(), DiffError> {
    fs::remove_file(worktree.join(path)).map_err(|e| DiffError::io("delete", path, e))
}

/// Writes a file's planned content: replaces it when it exists, else creates it.
pub(super) fn write(worktree: &Path, path: &str, bytes: &[u8]) -> Result<(), DiffError> {
    let target = worktree.join(path);
    match fs::symlink_metadata(&target) {
        Ok(meta) => replace_file(&target, path, bytes, meta.permissions()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create_file(worktree, &target, path, bytes)
        }
        Err(e) => Err(DiffError::io("inspect", path, e)),
    }
}

/// Creates a new file, making its folders first; refuses to overwrite.
fn create_file(worktree: &Path, target: &Path, path: &str, bytes: &[u8]) -> Result<(), DiffError> {
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(|e| DiffError::io("create the folder of", path, e))?;
        // Folders just made must not have been swapped for links meanwhile.
        check::on_disk(worktree, path)?;
        ensure_inside(worktree, parent, path)?;
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)
        .map_err(|e| DiffError::io("create", path, e))?;
    file.write_all(bytes).map_err(|e| DiffError::io("write", path, e))
}

/// Replaces an existing file through a temporary file in the same folder,
/// keeping its permissions.
fn replace_file(
    target: &Path,
    path: &str,
    bytes: &[u8],
    permissions: fs::Permissions,
) -> Result<(), DiffError> {
    let temp = temp_name(target);
    let result = (|| {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).open(&temp)?;
        file.write_all(bytes)?;
        file.set_permissions(permissions)?;
        fs::rename(&temp, target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map_err(|e| DiffError::io("write", path, e))
}

fn temp_name(target: &Path) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    target.with_file_name(format!(".{name}.patch-{}.tmp", std::process::id()))
}

/// Checks that a folder resolves to a place inside the worktree.
fn ensure_inside(worktree: &Path, folder: &Path, path: &str) -> Result<(), DiffError> {
    let root = fs::canonicalize(worktree)
        .map_err(|e| DiffError::io("resolve the worktree for", path, e))?;
    let real =
        fs::canonicalize(folder).map_err(|e| DiffError::io("resolve the folder of", path, e))?;
    if !real.starts_with(&root) {
        return Err(DiffError::unsafe_path(path, "its folder resolves outside the worktree"));
    }
    Ok(())
}
