//! Bare clones and per-job worktrees, on git2.
//!
//! Layout: `<workspace>/<project>/.cache` is the project's bare clone, and
//! `<workspace>/<project>/<job_id>/` the worktree a job runs in. Remote
//! branches are fetched to `refs/remotes/origin/*`, so the bare clone's own
//! `refs/heads/*` only ever hold the short-lived branches libgit2 needs while
//! adding a worktree. The remote URL is never written to the clone's config:
//! fetches use an anonymous remote, so credentials stay in the ledger.
//!
//! [`Workspace`] does the work with plain blocking methods; the
//! [`WorkspaceManager`] actor is a thin shell that runs them on blocking
//! threads while holding a per-project lock, so git work for one project is
//! serialised while different projects proceed in parallel.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use git2::{
    AutotagOption, BranchType, FetchOptions, ObjectType, Oid, Repository, WorktreeAddOptions,
    WorktreePruneOptions,
};

use crate::error::{Error, Result};

const LAST_USED: &str = "crafting-last-used";
/// Holds the per-job folders inside a project's folder.
const JOBS_DIR: &str = ".jobs";

/// A checked-out worktree for one job.
#[derive(Debug, Clone)]
pub struct Materialized {
    /// Absolute path of the worktree.
    pub path: PathBuf,
    /// The commit checked out.
    pub sha: String,
    /// The remote's default branch, when it was detected during this fetch.
    pub default_branch: Option<String>,
}

/// What a gc pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Worktrees removed for being older than the limit.
    pub worktrees_pruned: usize,
    /// Bare clones `git gc`'d for being idle.
    pub clones_collected: usize,
}

/// Git operations on the workspace folder, all blocking.
#[derive(Debug)]
pub struct Workspace {
    root: PathBuf,
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    concurrency: Mutex<(HashMap<String, usize>, usize)>,
}

impl Workspace {
    /// A workspace rooted at `root` (created when missing).
    pub fn new(root: PathBuf) -> Result<Workspace> {
        fs::create_dir_all(&root)
            .map_err(|e| Error::io(format!("creating workspace {}", root.display()), e))?;
        // Other users (a build user) may pass through but not list projects.
        restrict_listing(&root);
        let root = root
            .canonicalize()
            .map_err(|e| Error::io(format!("resolving workspace {}", root.display()), e))?;
        Ok(Workspace { root, locks: Mutex::default(), concurrency: Mutex::default() })
    }

    /// The canonical workspace root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder holding a project's clone and worktrees.
    pub fn project_dir(&self, project: &str) -> PathBuf {
        self.root.join(project)
    }

    /// The worktree path a job uses.
    pub fn worktree_path(&self, project: &str, job_id: &str) -> PathBuf {
        self.project_dir(project).join(job_id)
    }

    /// The project's bare clone.
    pub fn clone_path(&self, project: &str) -> PathBuf {
        self.project_dir(project).join(".cache")
    }

    /// A job's own folder outside its worktree (`home/` and `tmp/` of the
    /// recipe), removed with the worktree.
    pub fn job_dir(&self, project: &str, job_id: &str) -> PathBuf {
        self.project_dir(project).join(JOBS_DIR).join(job_id)
    }

    /// Most git operations ever seen running at once for a single project.
    pub fn max_concurrent_per_project(&self) -> usize {
        self.concurrency.lock().expect("not poisoned").1
    }

    /// Runs `f` holding the project's git lock.
    pub fn with_project_lock<T>(&self, project: &str, f: impl FnOnce() -> T) -> T {
        let lock =
            self.locks.lock().expect("not poisoned").entry(project.to_owned()).or_default().clone();
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        {
            let mut c = self.concurrency.lock().expect("not poisoned");
            let n = c.0.entry(project.to_owned()).or_default();
            *n += 1;
            let n = *n;
            c.1 = c.1.max(n);
        }
        let out = f();
        *self.concurrency.lock().expect("not poisoned").0.entry(project.to_owned()).or_default() -=
            1;
        out
    }

    /// Sets who may enter the project's folder: with `group` (user
    /// isolation), the service and that group only (`root:<group>`, 0750);
    /// without, anyone may pass through but not list it (0711).
    pub fn protect_project(&self, project: &str, group: Option<u32>) -> Result<()> {
        let dir = self.project_dir(project);
        match group {
            Some(g) => crate::isolation::give_to_group(&dir, g, 0o750)
                .map_err(|e| Error::io(format!("handing {} to group {g}", dir.display()), e)),
            None => {
                restrict_listing(&dir);
                Ok(())
            }
        }
    }

    /// Opens the project's bare clone, creating it when needed.
    fn clone_for(&self, project: &str, group: Option<u32>) -> Result<Repository> {
        let path = self.clone_path(project);
        let repo = match Repository::open_bare(&path) {
            Ok(r) => r,
            Err(_) => {
                fs::create_dir_all(&path)
                    .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
                Repository::init_bare(&path).map_err(|e| Error::git("init", e))?
            }
        };
        self.protect_project(project, group)?;
        touch(&path.join(LAST_USED));
        Ok(repo)
    }

    /// Fetches `url` into the project's bare clone, resolves `git_ref` (or the
    /// default branch) to a commit, and checks it out in a new worktree for `job_id`.
    ///
    /// A full 40-hex commit id that the clone already holds is checked out
    /// without contacting the remote: a commit id names the same tree
    /// forever, so a fetch could not change the outcome. Branches, tags and
    /// abbreviated ids are always fetched first, so a branch builds its
    /// current tip.
    pub fn materialize(
        &self,
        project: &str,
        url: &str,
        default_branch: Option<&str>,
        git_ref: Option<&str>,
        job_id: &str,
    ) -> Result<Materialized> {
        self.materialize_in_group(project, url, default_branch, git_ref, job_id, None)
    }

    /// Like [`Workspace::materialize`], with the project's folder handed to
    /// `group` first when given (see [`Workspace::protect_project`]).
    pub fn materialize_in_group(
        &self,
        project: &str,
        url: &str,
        default_branch: Option<&str>,
        git_ref: Option<&str>,
        job_id: &str,
        group: Option<u32>,
    ) -> Result<Materialized> {
        let repo = self.clone_for(project, group)?;
        let (oid, detected) = match known_commit(&repo, git_ref) {
            Some(oid) => (oid, None),
            None => {
                let detected = fetch(&repo, url)?;
                (resolve(&repo, git_ref, default_branch.or(detected.as_deref()))?, detected)
            }
        };
        let path = self.worktree_path(project, job_id);
        add_worktree(&repo, job_id, &path, oid)?;
        Ok(Materialized { path, sha: oid.to_string(), default_branch: detected })
    }

    /// Removes a job's worktree and its administrative entry in the bare clone.
    pub fn release(&self, project: &str, job_id: &str) -> Result<()> {
        let path = self.worktree_path(project, job_id);
        remove_tree(&path)?;
        remove_tree(&self.job_dir(project, job_id))?;
        if let Ok(repo) = Repository::open_bare(self.project_dir(project).join(".cache")) {
            if let Ok(wt) = repo.find_worktree(job_id) {
                let _ = wt.prune(Some(WorktreePruneOptions::new().valid(true).working_tree(true)));
            }
            if let Ok(mut b) = repo.find_branch(&job_branch(job_id), BranchType::Local) {
                let _ = b.delete();
            }
        }
        Ok(())
    }

    /// Checks out `sha` in a new worktree named `name` on a new local branch
    /// `branch` of the bare clone (replacing a branch of that name), for the
    /// patcher. Remove it with [`Workspace::release`]; the branch stays until
    /// [`Workspace::delete_branch`].
    pub fn branch_worktree(
        &self,
        project: &str,
        name: &str,
        sha: &str,
        branch: &str,
    ) -> Result<PathBuf> {
        let repo =
            Repository::open_bare(self.clone_path(project)).map_err(|e| Error::git("open", e))?;
        let path = self.worktree_path(project, name);
        let oid = Oid::from_str(sha).map_err(|e| Error::git("read commit", e))?;
        worktree_on_branch(&repo, name, &path, oid, branch)?;
        Ok(path)
    }

    /// Deletes a local branch of the project's bare clone, when it exists.
    pub fn delete_branch(&self, project: &str, branch: &str) -> Result<()> {
        let repo =
            Repository::open_bare(self.clone_path(project)).map_err(|e| Error::git("open", e))?;
        if let Ok(mut b) = repo.find_branch(branch, BranchType::Local) {
            b.delete().map_err(|e| Error::git("branch delete", e))?;
        }
        Ok(())
    }

    /// Removes a project's whole folder: clone and worktrees.
    pub fn remove_project(&self, project: &str) -> Result<()> {
        remove_tree(&self.project_dir(project))
    }

    /// Reads the given 1-based lines of files at commit `sha` from the bare clone.
    /// Files or lines that do not exist are left out.
    pub fn source_lines(
        &self,
        project: &str,
        sha: &str,
        wanted: &[(String, u32)],
    ) -> Result<HashMap<(String, u32), String>> {
        let mut out = HashMap::new();
        if wanted.is_empty() {
            return Ok(out);
        }
        let repo = Repository::open_bare(self.project_dir(project).join(".cache"))
            .map_err(|e| Error::git("open", e))?;
        let oid = Oid::from_str(sha).map_err(|e| Error::git("read commit", e))?;
        let tree = repo
            .find_commit(oid)
            .and_then(|c| c.tree())
            .map_err(|e| Error::git("read commit", e))?;
        let mut by_file: HashMap<&str, Vec<u32>> = HashMap::new();
        for (file, line) in wanted {
            by_file.entry(file).or_default().push(*line);
        }
        for (file, lines) in by_file {
            let Ok(entry) = tree.get_path(Path::new(file)) else { continue };
            if entry.kind() != Some(ObjectType::Blob) {
                continue;
            }
            let Ok(blob) = repo.find_blob(entry.id()) else { continue };
            let text = String::from_utf8_lossy(blob.content());
            let all: Vec<&str> = text.lines().collect();
            for l in lines {
                if let Some(s) = all.get((l as usize).wrapping_sub(1)) {
                    out.insert((file.to_owned(), l), (*s).to_owned());
                }
            }
        }
        Ok(out)
    }

    /// Prunes worktrees older than `max_age` in projects not named in `busy`,
    /// and `git gc`s bare clones idle longer than `idle`.
    pub fn gc(&self, max_age: Duration, idle: Duration, busy: &[String]) -> Result<GcReport> {
        let mut report = GcReport::default();
        let now = SystemTime::now();
        let age = |p: &Path| {
            fs::metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default()
        };
        let git_cli = Command::new("git").arg("--version").output().is_ok();
        let mut warned = false;
        let Ok(projects) = fs::read_dir(&self.root) else { return Ok(report) };
        for project in projects.flatten() {
            let Some(name) = project.file_name().to_str().map(str::to_owned) else { continue };
            if !project.path().is_dir() {
                continue;
            }
            self.with_project_lock(&name, || {
                for entry in fs::read_dir(project.path()).into_iter().flatten().flatten() {
                    let Some(job) = entry.file_name().to_str().map(str::to_owned) else {
                        continue;
                    };
                    if job == JOBS_DIR {
                        // Job folders whose worktree is already gone.
                        for e in fs::read_dir(entry.path()).into_iter().flatten().flatten() {
                            let id = e.file_name().to_string_lossy().into_owned();
                            if !busy.contains(&id) && age(&e.path()) > max_age {
                                let _ = remove_tree(&e.path());
                            }
                        }
                        continue;
                    }
                    if job.starts_with('.') || busy.contains(&job) {
                        continue;
                    }
                    if age(&entry.path()) > max_age && self.release(&name, &job).is_ok() {
                        report.worktrees_pruned += 1;
                    }
                }
                let clone = project.path().join(".cache");
                if clone.is_dir() && age(&clone.join(LAST_USED)) > idle {
                    if !git_cli {
                        if !warned {
                            tracing::info!("git CLI not found; skipping gc of idle bare clones");
                            warned = true;
                        }
                        return;
                    }
                    let ok = Command::new("git")
                        .args(["-c", "core.hooksPath=/dev/null", "-C"])
                        .arg(&clone)
                        .args(["gc", "--quiet"])
                        .status()
                        .map(|s| s.success())
                        .unwrap_or(false);
                    if ok {
                        report.clones_collected += 1;
                        touch(&clone.join(LAST_USED));
                    }
                }
            });
        }
        Ok(report)
    }
}

fn job_branch(job_id: &str) -> String {
    format!("crafting-job-{job_id}")
}

fn touch(path: &Path) {
    let _ = fs::write(path, b"");
}

/// Fetches branches and tags; returns the remote's default branch when it says.
fn fetch(repo: &Repository, url: &str) -> Result<Option<String>> {
    let mut remote = repo.remote_anonymous(url).map_err(|e| Error::git("fetch", e))?;
    let mut opts = FetchOptions::new();
    opts.download_tags(AutotagOption::None).prune(git2::FetchPrune::On);
    remote
        .fetch(
            &["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"],
            Some(&mut opts),
            None,
        )
        .map_err(|e| Error::git("fetch", e))?;
    let detected = remote
        .default_branch()
        .ok()
        .and_then(|b| b.as_str().ok().map(str::to_owned))
        .and_then(|b| b.strip_prefix("refs/heads/").map(str::to_owned));
    Ok(detected)
}

/// The commit a ref names when it is a full 40-hex commit id already in the
/// clone, and no fetched branch or tag carries that same name (which
/// [`resolve`] would prefer).
fn known_commit(repo: &Repository, git_ref: Option<&str>) -> Option<Oid> {
    let r = git_ref?;
    if r.len() != 40 || !r.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let named = |prefix: &str| repo.find_reference(&format!("{prefix}{r}")).is_ok();
    if named("refs/remotes/origin/") || named("refs/tags/") {
        return None;
    }
    let oid = Oid::from_str(r).ok()?;
    repo.find_object(oid, None).and_then(|o| o.peel_to_commit()).map(|c| c.id()).ok()
}

/// Resolves a user ref (branch, tag, or hex commit id) to a commit.
fn resolve(repo: &Repository, git_ref: Option<&str>, default_branch: Option<&str>) -> Result<Oid> {
    let not_found = |what: String| Error::invalid("unknown_ref", what);
    let Some(r) = git_ref else {
        let branch = default_branch.unwrap_or("main");
        return repo
            .find_reference(&format!("refs/remotes/origin/{branch}"))
            .and_then(|r| r.peel_to_commit())
            .map(|c| c.id())
            .map_err(|_| {
                not_found(format!(
                    "the default branch {branch:?} does not exist in the repository; \
                     set default_branch on the project or pass a ref"
                ))
            });
    };
    // Full names work too: refs/heads/<branch> is the remote's branch.
    let r = r.strip_prefix("refs/heads/").unwrap_or(r);
    let r = r.strip_prefix("refs/tags/").unwrap_or(r);
    for candidate in [format!("refs/remotes/origin/{r}"), format!("refs/tags/{r}")] {
        if let Ok(c) = repo.find_reference(&candidate).and_then(|r| r.peel_to_commit()) {
            return Ok(c.id());
        }
    }
    if (4..=40).contains(&r.len())
        && r.bytes().all(|b| b.is_ascii_hexdigit())
        && let Ok(c) = repo.revparse_single(r).and_then(|o| o.peel_to_commit())
    {
        return Ok(c.id());
    }
    Err(not_found(format!(
        "ref {r:?} is not a branch, tag or commit of the repository (commits must be reachable \
         from a branch or tag)"
    )))
}

/// Checks out `oid` at `path` as the worktree `name` on the local branch
/// `branch` (created there, replacing one of that name), clearing what a
/// previous worktree of that name left.
fn worktree_on_branch(
    repo: &Repository,
    name: &str,
    path: &Path,
    oid: Oid,
    branch: &str,
) -> Result<()> {
    if path.exists() {
        remove_tree(path)?;
    }
    if let Ok(wt) = repo.find_worktree(name) {
        let _ = wt.prune(Some(WorktreePruneOptions::new().valid(true).working_tree(true)));
    }
    let commit = repo.find_commit(oid).map_err(|e| Error::git("worktree add", e))?;
    let b = repo.branch(branch, &commit, true).map_err(|e| Error::git("branch", e))?;
    let mut opts = WorktreeAddOptions::new();
    opts.reference(Some(b.get()));
    repo.worktree(name, path, Some(&opts)).map_err(|e| Error::git("worktree add", e))?;
    Ok(())
}

fn add_worktree(repo: &Repository, job_id: &str, path: &Path, oid: Oid) -> Result<()> {
    let branch_name = job_branch(job_id);
    worktree_on_branch(repo, job_id, path, oid, &branch_name)?;
    // Leave the worktree on a detached HEAD at the commit, as CI checkouts do,
    // and drop the helper branch.
    let wt = Repository::open(path).map_err(|e| Error::git("worktree open", e))?;
    wt.set_head_detached(oid).map_err(|e| Error::git("detach", e))?;
    if let Ok(mut b) = repo.find_branch(&branch_name, BranchType::Local) {
        let _ = b.delete();
    }
    Ok(())
}

/// Mode 0711: other users may pass through a folder but not list it.
fn restrict_listing(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o711));
}

/// Removes a folder tree, making read-only folders writable when needed.
fn remove_tree(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    if fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    fn make_writable(p: &Path) {
        if let Ok(meta) = fs::symlink_metadata(p)
            && meta.is_dir()
        {
            let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o700));
            for e in fs::read_dir(p).into_iter().flatten().flatten() {
                make_writable(&e.path());
            }
        }
    }
    make_writable(path);
    fs::remove_dir_all(path).map_err(|e| Error::io(format!("removing {}", path.display()), e))
}

// ----- actor ------------------------------------------------------------------------------

/// The actor owning the workspace; every handler runs its git work on a
/// blocking thread under the project's lock.
pub struct WorkspaceManager {
    ws: Arc<Workspace>,
}

impl WorkspaceManager {
    /// Wraps a workspace.
    pub fn new(ws: Arc<Workspace>) -> Self {
        WorkspaceManager { ws }
    }
}

impl Actor for WorkspaceManager {
    type Context = Context<Self>;
}

impl Supervised for WorkspaceManager {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!("workspace manager restarting");
    }
}

/// Sent by the runner before a job runs: fetch and check out a worktree.
#[derive(Message)]
#[rtype(result = "Result<Materialized>")]
pub struct Materialize {
    /// Project name.
    pub project: String,
    /// URL (with credentials) to fetch from.
    pub url: String,
    /// The project's configured default branch.
    pub default_branch: Option<String>,
    /// The ref the job asked for.
    pub git_ref: Option<String>,
    /// The job id, which names the worktree.
    pub job_id: String,
    /// The project's own group id in `user` isolation: the project's folder
    /// is handed to it (`root:<group>`, 0750) before anything is checked out.
    pub group: Option<u32>,
}

/// Sent by the runner when a job ends: remove its worktree.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct Release {
    /// Project name.
    pub project: String,
    /// Job id.
    pub job_id: String,
}

/// Sent when a project is deleted: remove its clone and worktrees.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct RemoveProject {
    /// Project name.
    pub project: String,
}

/// Sent after parsing: read source lines at a commit, for finding identities.
#[derive(Message)]
#[rtype(result = "Result<HashMap<(String, u32), String>>")]
pub struct SourceLines {
    /// Project name.
    pub project: String,
    /// Commit id.
    pub sha: String,
    /// (file, 1-based line) pairs.
    pub wanted: Vec<(String, u32)>,
}

/// Sent hourly by the engine's timer: prune old worktrees, gc idle clones.
#[derive(Message)]
#[rtype(result = "Result<GcReport>")]
pub struct Gc {
    /// Worktrees older than this are pruned.
    pub max_age: Duration,
    /// Clones idle longer than this are gc'd.
    pub idle: Duration,
    /// Job ids still running, whose worktrees are kept whatever their age.
    pub busy: Vec<String>,
}

/// Runs `f` on a blocking thread, holding the project's git lock when a
/// project is named.
pub(crate) fn blocking<T: Send + 'static>(
    ws: &Arc<Workspace>,
    project: Option<String>,
    f: impl FnOnce(&Workspace) -> Result<T> + Send + 'static,
) -> ResponseFuture<Result<T>> {
    let ws = ws.clone();
    Box::pin(async move {
        tokio::task::spawn_blocking(move || match project {
            Some(p) => ws.with_project_lock(&p, || f(&ws)),
            None => f(&ws),
        })
        .await
        .map_err(|e| Error::Pool(format!("git worker failed: {e}")))?
    })
}

impl Handler<Materialize> for WorkspaceManager {
    type Result = ResponseFuture<Result<Materialized>>;

    fn handle(&mut self, m: Materialize, _: &mut Context<Self>) -> Self::Result {
        let p = m.project.clone();
        blocking(&self.ws, Some(p), move |ws| {
            ws.materialize_in_group(
                &m.project,
                &m.url,
                m.default_branch.as_deref(),
                m.git_ref.as_deref(),
                &m.job_id,
                m.group,
            )
        })
    }
}

impl Handler<Release> for WorkspaceManager {
    type Result = ResponseFuture<Result<()>>;

    fn handle(&mut self, m: Release, _: &mut Context<Self>) -> Self::Result {
        let p = m.project.clone();
        blocking(&self.ws, Some(p), move |ws| ws.release(&m.project, &m.job_id))
    }
}

impl Handler<RemoveProject> for WorkspaceManager {
    type Result = ResponseFuture<Result<()>>;

    fn handle(&mut self, m: RemoveProject, _: &mut Context<Self>) -> Self::Result {
        let p = m.project.clone();
        blocking(&self.ws, Some(p), move |ws| ws.remove_project(&m.project))
    }
}

impl Handler<SourceLines> for WorkspaceManager {
    type Result = ResponseFuture<Result<HashMap<(String, u32), String>>>;

    fn handle(&mut self, m: SourceLines, _: &mut Context<Self>) -> Self::Result {
        let p = m.project.clone();
        blocking(&self.ws, Some(p), move |ws| ws.source_lines(&m.project, &m.sha, &m.wanted))
    }
}

impl Handler<Gc> for WorkspaceManager {
    type Result = ResponseFuture<Result<GcReport>>;

    fn handle(&mut self, m: Gc, _: &mut Context<Self>) -> Self::Result {
        blocking(&self.ws, None, move |ws| ws.gc(m.max_age, m.idle, &m.busy))
    }
}
