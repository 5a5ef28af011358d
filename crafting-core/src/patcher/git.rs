//! Git work of the patch loop: reading files at the job's commit from the
//! bare clone, and committing an applied diff in its worktree.

use std::path::Path;

use git2::{ObjectType, Oid, Repository, Signature, TreeWalkMode, TreeWalkResult};

use super::agent::Context;
use super::diff::Change;
use super::native::Source;
use crate::error::{Error, Result};

/// Most files listed from one commit.
const MAX_LISTED: usize = 100_000;

/// The files of one commit in a bare clone.
pub struct CommitFiles {
    repo: Repository,
    tree: Oid,
}

impl CommitFiles {
    /// Opens `clone` at commit `sha`.
    pub fn open(clone: &Path, sha: &str) -> Result<CommitFiles> {
        let repo = Repository::open_bare(clone).map_err(|e| Error::git("open", e))?;
        let oid = Oid::from_str(sha).map_err(|e| Error::git("read commit", e))?;
        let tree = repo
            .find_commit(oid)
            .and_then(|c| c.tree())
            .map_err(|e| Error::git("read commit", e))?
            .id();
        Ok(CommitFiles { repo, tree })
    }

    /// Lines `line - radius ..= line + radius` of `path` (1-based); for a
    /// finding without a line (a manifest), the file's first lines. `None`
    /// when the file is not a text file of the commit.
    pub fn context(&self, path: &str, line: Option<u32>, radius: u32) -> Option<Context> {
        let text = self.read(path)?;
        match line {
            Some(l) => Context::around(path, &text, l, radius),
            None => Context::around(path, &text, 1, radius * 2),
        }
    }
}

impl Source for CommitFiles {
    fn read(&self, path: &str) -> Option<String> {
        let tree = self.repo.find_tree(self.tree).ok()?;
        let entry = tree.get_path(Path::new(path)).ok()?;
        if entry.kind() != Some(ObjectType::Blob) || entry.filemode() == 0o120000 {
            return None;
        }
        let blob = self.repo.find_blob(entry.id()).ok()?;
        String::from_utf8(blob.content().to_vec()).ok()
    }

    fn list(&self) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(tree) = self.repo.find_tree(self.tree) else { return out };
        let _ = tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
            if out.len() >= MAX_LISTED {
                return TreeWalkResult::Abort;
            }
            if entry.kind() == Some(ObjectType::Blob)
                && let Ok(name) = entry.name()
            {
                out.push(format!("{dir}{name}"));
            }
            TreeWalkResult::Ok
        });
        out
    }
}

/// Commits the applied `changes` in the worktree at `worktree` (whose HEAD
/// is the fix branch) and returns the new commit's id.
pub fn commit(
    worktree: &Path,
    changes: &[Change],
    message: &str,
    author: (&str, &str),
) -> Result<String> {
    let repo = Repository::open(worktree).map_err(|e| Error::git("open worktree", e))?;
    let mut index = repo.index().map_err(|e| Error::git("index", e))?;
    for change in changes {
        let path = Path::new(&change.path);
        match change.content {
            Some(_) => index.add_path(path),
            None => index.remove_path(path),
        }
        .map_err(|e| Error::git("stage", e))?;
    }
    index.write().map_err(|e| Error::git("index", e))?;
    let tree_id = index.write_tree().map_err(|e| Error::git("write tree", e))?;
    let tree = repo.find_tree(tree_id).map_err(|e| Error::git("write tree", e))?;
    let parent =
        repo.head().and_then(|h| h.peel_to_commit()).map_err(|e| Error::git("read HEAD", e))?;
    let sig = Signature::now(author.0, author.1).map_err(|e| Error::git("signature", e))?;
    let oid = repo
        .commit(Some("HEAD"), &sig, &sig, message, &tree, &[&parent])
        .map_err(|e| Error::git("commit", e))?;
    Ok(oid.to_string())
}

/// The branch a fix of a job at `sha` goes into: the branch the job asked
/// for when it named one, else `default_branch`. The job's commit must be on
/// that branch as last fetched, or the pull request would carry commits
/// nobody asked to merge; `Ok(Err(why))` says so.
pub fn pr_base(
    clone: &Path,
    sha: &str,
    git_ref: Option<&str>,
    default_branch: &str,
) -> Result<std::result::Result<String, String>> {
    let repo = Repository::open_bare(clone).map_err(|e| Error::git("open", e))?;
    let tip = |branch: &str| {
        repo.find_reference(&format!("refs/remotes/origin/{branch}"))
            .and_then(|r| r.peel_to_commit())
            .map(|c| c.id())
            .ok()
    };
    let asked = git_ref.map(|r| r.strip_prefix("refs/heads/").unwrap_or(r));
    let base = match asked.filter(|b| tip(b).is_some()) {
        Some(branch) => branch.to_owned(),
        None => default_branch.to_owned(),
    };
    let Some(head) = tip(&base) else {
        return Ok(Err(format!("the branch {base:?} is not in the remote repository any more")));
    };
    let oid = Oid::from_str(sha).map_err(|e| Error::git("read commit", e))?;
    let on_branch = head == oid
        || repo.graph_descendant_of(head, oid).map_err(|e| Error::git("merge base", e))?;
    if on_branch {
        Ok(Ok(base))
    } else {
        Ok(Err(format!(
            "the job's commit {sha} is not on the branch {base:?}: a pull request into it would \
             carry other commits besides the fix; run the recipe on {base:?} (or on a branch \
             holding the commit) and ask for the patch on that job"
        )))
    }
}
