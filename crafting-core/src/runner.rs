//! The Runner actor: a bounded pool of job slots, a FIFO queue, and the
//! lifecycle of each job from worktree to findings.
//!
//! The actor owns the queue and the table of running jobs; each running job
//! is a task on the runner's arbiter that does the slow work off-thread
//! (git on the workspace manager's blocking threads, the recipe on its own
//! process group, parsing on the parser registry's blocking threads) and
//! reports back with [`JobDone`]. A job task that panics is caught by its
//! watcher, the job is recorded as failed, and the runner carries on.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use crafting_parsers::ParseContext;
use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, oneshot};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::isolation::{self, Isolation, IsolationMode, Jail, JobCgroup};
use crate::ledger::{JobOutcome, JobRow, Ledger};
use crate::model::{Finding, Job, JobStatus, RunnerStats};
use crate::parsers::{Parse, ParserRegistry};
use crate::process::{self, Recipe, Spec};
use crate::workspace::{Gc, Materialize, Release, SourceLines, Workspace, WorkspaceManager};

/// Emitted (on the engine's event channel) when a job reaches an end state.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct JobFinished {
    /// The job as recorded.
    pub job: Job,
}

/// What every job task needs.
pub struct Shared {
    /// Configuration.
    pub config: Config,
    /// The ledger.
    pub ledger: Ledger,
    /// The workspace manager actor.
    pub workspace: Addr<WorkspaceManager>,
    /// The workspace itself, for statistics.
    pub ws: Arc<Workspace>,
    /// The parser registry actor.
    pub parsers: Addr<ParserRegistry>,
    /// Where [`JobFinished`] events go.
    pub events: broadcast::Sender<JobFinished>,
    /// How recipes are isolated, chosen at start-up.
    pub isolation: Isolation,
}

/// The job pool.
pub struct Runner {
    shared: Arc<Shared>,
    queue: VecDeque<String>,
    running: HashMap<String, Option<oneshot::Sender<Stop>>>,
    finished: u64,
    accepting: bool,
}

/// Why a running job is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// A user cancelled it.
    Cancel,
    /// The service is shutting down.
    Shutdown,
}

impl Runner {
    /// A runner with nothing queued.
    pub fn new(shared: Arc<Shared>) -> Self {
        Runner {
            shared,
            queue: VecDeque::new(),
            running: HashMap::new(),
            finished: 0,
            accepting: true,
        }
    }

    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        while self.accepting
            && self.running.len() < self.shared.config.runner_workers
            && let Some(id) = self.queue.pop_front()
        {
            let (stop_tx, stop_rx) = oneshot::channel();
            self.running.insert(id.clone(), Some(stop_tx));
            let shared = self.shared.clone();
            let me = ctx.address();
            let task = tokio::task::spawn_local(run_job(shared.clone(), id.clone(), stop_rx));
            actix::spawn(async move {
                if let Err(e) = task.await {
                    tracing::error!(job_id = %id, error = %e, "job task failed");
                    record_crash(&shared, &id, "internal error: the job task panicked").await;
                }
                me.do_send(JobDone { job_id: id });
            });
        }
    }
}

impl Actor for Runner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let every = self.shared.config.gc_interval;
        ctx.run_interval(every, |runner, _| {
            let busy: Vec<String> = runner.running.keys().cloned().collect();
            let cfg = &runner.shared.config;
            let msg = Gc { max_age: cfg.worktree_max_age, idle: cfg.clone_idle_gc, busy };
            let ws = runner.shared.workspace.clone();
            actix::spawn(async move {
                match ws.send(msg).await {
                    Ok(Ok(r)) => tracing::info!(
                        worktrees_pruned = r.worktrees_pruned,
                        clones_collected = r.clones_collected,
                        "workspace gc"
                    ),
                    Ok(Err(e)) => tracing::warn!(error = %e, "workspace gc failed"),
                    Err(e) => tracing::warn!(error = %e, "workspace manager unreachable"),
                }
            });
        });
    }
}

impl Supervised for Runner {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // Running jobs keep their own tasks; forget their slots so they can
        // report again, and requeue nothing here: the handle re-enqueues
        // queued jobs from the ledger.
        tracing::warn!(running = self.running.len(), "runner restarting");
    }
}

/// Sent by the handle after a job is stored as queued.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Enqueue {
    /// Job id.
    pub job_id: String,
}

/// Sent by the handle to cancel a job. Replies whether the runner knew it.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Cancel {
    /// Job id.
    pub job_id: String,
}

/// Sent by a job's watcher when the job is over.
#[derive(Message)]
#[rtype(result = "()")]
pub struct JobDone {
    /// Job id.
    pub job_id: String,
}

/// Asks for the runner's figures.
#[derive(Message)]
#[rtype(result = "RunnerStats")]
pub struct Stats;

/// Sent by the handle on shutdown: stop taking jobs; stop running ones.
/// Replies with the ids that were running.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct Drain {
    /// Also stop the running jobs (otherwise only the queue is closed).
    pub stop_running: bool,
}

impl Handler<Enqueue> for Runner {
    type Result = ();

    fn handle(&mut self, m: Enqueue, ctx: &mut Context<Self>) {
        if !self.running.contains_key(&m.job_id) && !self.queue.contains(&m.job_id) {
            self.queue.push_back(m.job_id);
        }
        self.dispatch(ctx);
    }
}

impl Handler<Cancel> for Runner {
    type Result = bool;

    fn handle(&mut self, m: Cancel, _: &mut Context<Self>) -> bool {
        if let Some(pos) = self.queue.iter().position(|id| *id == m.job_id) {
            self.queue.remove(pos);
            return true;
        }
        match self.running.get_mut(&m.job_id) {
            Some(stop) => {
                if let Some(tx) = stop.take() {
                    let _ = tx.send(Stop::Cancel);
                }
                true
            }
            None => false,
        }
    }
}

impl Handler<JobDone> for Runner {
    type Result = ();

    fn handle(&mut self, m: JobDone, ctx: &mut Context<Self>) {
        if self.running.remove(&m.job_id).is_some() {
            self.finished += 1;
        }
        self.dispatch(ctx);
    }
}

impl Handler<Stats> for Runner {
    type Result = MessageResult<Stats>;

    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(RunnerStats {
            workers: self.shared.config.runner_workers,
            running: self.running.len(),
            queued: self.queue.len(),
            finished: self.finished,
            max_git_ops_per_project: self.shared.ws.max_concurrent_per_project(),
        })
    }
}

impl Handler<Drain> for Runner {
    type Result = MessageResult<Drain>;

    fn handle(&mut self, m: Drain, _: &mut Context<Self>) -> Self::Result {
        self.accepting = false;
        let ids: Vec<String> = self.running.keys().cloned().collect();
        if m.stop_running {
            for stop in self.running.values_mut() {
                if let Some(tx) = stop.take() {
                    let _ = tx.send(Stop::Shutdown);
                }
            }
        }
        MessageResult(ids)
    }
}

// ----- one job ----------------------------------------------------------------------------

/// A line the engine itself writes into a job's log (creating the log and
/// its folder when needed).
pub(crate) fn engine_line(log: &Path, text: &str) {
    use std::io::{Read, Seek, SeekFrom};
    if let Some(dir) = log.parent() {
        let _ = fs::create_dir_all(dir);
    }
    let Ok(mut f) = fs::OpenOptions::new().create(true).read(true).append(true).open(log) else {
        return;
    };
    // Output that did not end its last line gets one, so that the engine's
    // line starts a line of its own.
    let mut last = [0u8; 1];
    let open_line =
        f.seek(SeekFrom::End(-1)).is_ok() && f.read_exact(&mut last).is_ok() && last[0] != b'\n';
    let _ = writeln!(f, "{}[crafting-table] {text}", if open_line { "\n" } else { "" });
}

/// Absolute path of a job's log file.
pub fn log_file(config: &Config, rel: &str) -> PathBuf {
    config.logs_dir().join(rel)
}

async fn record_crash(shared: &Shared, id: &str, reason: &str) {
    let Ok(Some(row)) = shared.ledger.get_job(id.to_owned()).await else { return };
    let log = log_file(&shared.config, &row.log_path);
    engine_line(&log, reason);
    let outcome = JobOutcome::unparsed(JobStatus::Failed, Some(-1), Some(reason.to_owned()), &log);
    if let Ok(Some(job)) = shared.ledger.finish_job(id.to_owned(), outcome).await {
        let _ = shared
            .workspace
            .send(Release { project: row.job.project, job_id: id.to_owned() })
            .await;
        let _ = shared.events.send(JobFinished { job });
    }
}

async fn run_job(shared: Arc<Shared>, id: String, stop: oneshot::Receiver<Stop>) {
    match run_job_inner(&shared, &id, stop).await {
        Ok(()) => {}
        Err(e) => {
            tracing::warn!(job_id = %id, error = %e, "job could not run");
            record_crash(&shared, &id, &format!("job could not run: {e}")).await;
        }
    }
}

async fn run_job_inner(
    shared: &Arc<Shared>,
    id: &str,
    mut stop: oneshot::Receiver<Stop>,
) -> Result<()> {
    let cfg = &shared.config;
    let ledger = &shared.ledger;

    // Claim the job; a job cancelled while queued is no longer ours.
    let Some((row, project)) = ledger.claim_job(id.to_owned()).await? else {
        return Ok(());
    };
    let job = &row.job;
    // In user isolation, each project's recipes run with a group of its own.
    let group = match shared.isolation.mode {
        IsolationMode::User => Some(isolation::project_gid(cfg.project_gid_base, project.id)?),
        IsolationMode::Bwrap | IsolationMode::None => None,
    };
    let log = log_file(cfg, &row.log_path);
    if let Some(dir) = log.parent() {
        fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    let snap = &job.recipe_snapshot;
    engine_line(
        &log,
        &format!(
            "job {id}: recipe {:?} of {}/{} at ref {}",
            snap.recipe,
            job.project,
            snap.subproject,
            job.git_ref.as_deref().unwrap_or("(default branch)")
        ),
    );

    // Fetch and check out, unless cancelled meanwhile.
    let materialize = shared.workspace.send(Materialize {
        project: job.project.clone(),
        url: project.git_url.clone(),
        default_branch: project.project.default_branch.clone(),
        git_ref: job.git_ref.clone(),
        job_id: id.to_owned(),
        group,
    });
    let wt = tokio::select! {
        r = materialize => r.map_err(|_| Error::Stopped)?,
        s = &mut stop => {
            let why = stop_reason(s.unwrap_or(Stop::Cancel));
            return finish_without_run(shared, &row, &log, why).await;
        }
    };
    let wt = match wt {
        Ok(wt) => wt,
        Err(e) => {
            let msg = format!("checkout failed: {e}");
            engine_line(&log, &msg);
            let _ = shared
                .workspace
                .send(Release { project: job.project.clone(), job_id: id.to_owned() })
                .await;
            return finish(shared, &row, failed(msg, &log)).await;
        }
    };
    if project.project.default_branch.is_none()
        && let Some(b) = &wt.default_branch
    {
        ledger.set_default_branch(job.project.clone(), b.clone()).await?;
    }
    // The sha is recorded with the recipe's process group once it runs, or
    // with the end state when the job fails before that.
    let failed_at = |msg: String| JobOutcome { sha: Some(wt.sha.clone()), ..failed(msg, &log) };
    let release =
        || shared.workspace.send(Release { project: job.project.clone(), job_id: id.to_owned() });

    // The subproject folder must exist inside the worktree (no symlink out).
    let cwd = if snap.subproject == "." { wt.path.clone() } else { wt.path.join(&snap.subproject) };
    if !cwd.is_dir() || !process::resolves_inside(&wt.path, &cwd) {
        let msg = format!(
            "subproject folder {:?} does not exist at {} or leaves the repository",
            snap.subproject, wt.sha
        );
        engine_line(&log, &msg);
        let _ = release().await;
        return finish(shared, &row, failed_at(msg)).await;
    }

    // Confine and run the recipe.
    let network = snap.network.unwrap_or(cfg.recipe_network);
    if !network && shared.isolation.mode != IsolationMode::Bwrap {
        engine_line(
            &log,
            &format!(
                "network access cannot be taken away in {} isolation; the recipe keeps it",
                shared.isolation.mode
            ),
        );
    }
    let confined = match confine(shared, job, &wt.path, network, group) {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("could not prepare the recipe's sandbox: {e}");
            engine_line(&log, &msg);
            let _ = release().await;
            return finish(shared, &row, failed_at(msg)).await;
        }
    };
    if let Some(files) = &snap.changed_files {
        engine_line(
            &log,
            &format!(
                "verifying a patch: CRAFTING_CHANGED_FILES={} (for recipes that lint only \
                 changed files)",
                files.join(" ")
            ),
        );
    }
    engine_line(&log, &format!("running `{}` in {} at {}", snap.command, snap.subproject, wt.sha));
    let cgroup = confined.cgroup.clone();
    let spec = Spec {
        command: snap.command.clone(),
        cwd,
        env: confined.env,
        log_path: log.clone(),
        log_cap: cfg.log_max_bytes,
        jail: confined.jail,
    };
    let started = Instant::now();
    let mut recipe = match Recipe::spawn(&spec) {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("could not start /bin/sh: {e}");
            engine_line(&log, &msg);
            if let Some(cg) = &cgroup {
                cg.remove();
            }
            let _ = release().await;
            return finish(shared, &row, failed_at(msg)).await;
        }
    };
    let pgid = recipe.pgid;

    // Parse the log while the recipe prints it. The log is declared complete
    // once the engine's closing line is in, or when this function returns
    // early, so the parse never waits for more than there will be.
    let progress = recipe.progress();
    let log_complete = CompleteOnDrop(progress.clone());
    let ctx = ParseContext::new(
        &snap.language,
        &snap.recipe,
        None,
        wt.path.clone(),
        PathBuf::from(&snap.subproject),
    );
    let parsing = tokio::task::spawn_local(shared.parsers.send(Parse {
        ctx: ctx.clone(),
        log_path: log.clone(),
        progress,
    }));
    ledger.record_run(id.to_owned(), wt.sha.clone(), pgid, recipe.start_ticks).await?;
    let (exit_tx, exit_rx) = oneshot::channel();
    let waiter = std::thread::Builder::new()
        .name(format!("wait-{pgid}"))
        .spawn(move || {
            let status = recipe.wait();
            let _ = exit_tx.send(status);
            recipe
        })
        .map_err(|e| Error::io("starting a waiter thread", e))?;

    let timeout = Duration::from_secs(snap.timeout_secs);
    let quota = cfg.job_disk_max_bytes;
    let disk = std::pin::pin!(watch_disk(
        vec![wt.path.clone(), confined.job_dir.clone()],
        quota,
        cfg.disk_check_interval
    ));
    let mut ended_by: Option<(JobStatus, String)> = None;
    let mut exit_rx = exit_rx;
    let status = tokio::select! {
        s = &mut exit_rx => s,
        _ = tokio::time::sleep(timeout) => {
            ended_by = Some((JobStatus::TimedOut, format!("timed out after {} s", snap.timeout_secs)));
            stop_group(shared, pgid, id, cgroup.as_ref()).await;
            exit_rx.await
        }
        used = disk => {
            engine_line(&log, &format!(
                "the job's folders use {used} bytes, more than CRAFTING_JOB_DISK_MAX_BYTES={quota}"
            ));
            ended_by = Some((JobStatus::Failed, format!("disk quota of {quota} bytes exceeded")));
            stop_group(shared, pgid, id, cgroup.as_ref()).await;
            exit_rx.await
        }
        s = &mut stop => {
            let s = s.unwrap_or(Stop::Cancel);
            let (st, why) = stop_reason(s);
            ended_by = Some((st, why.to_owned()));
            stop_group(shared, pgid, id, cgroup.as_ref()).await;
            exit_rx.await
        }
    };
    let status = status.map_err(|_| Error::Stopped)?;

    // Whatever the shell left behind goes too, then the log is complete.
    stop_group(shared, pgid, id, cgroup.as_ref()).await;
    let capture = tokio::task::spawn_blocking(move || {
        if let Some(cg) = cgroup {
            cg.remove();
        }
        let mut recipe = waiter.join().map_err(|_| std::io::Error::other("waiter panicked"))?;
        recipe.finish_capture(Duration::from_secs(5))
    })
    .await
    .map_err(|e| Error::Pool(e.to_string()))?
    .map_err(|e| Error::io("capturing the log", e))?;
    let elapsed = started.elapsed();
    let exit_code = match &status {
        Ok(s) => process::exit_code(*s),
        Err(_) => -1,
    };
    let (job_status, reason) = match ended_by {
        Some((st, why)) => (st, Some(why)),
        None if exit_code == 0 => (JobStatus::Succeeded, None),
        None => (JobStatus::Failed, None),
    };
    if capture.truncated {
        tracing::info!(job_id = %id, cap = cfg.log_max_bytes, "log truncated");
    }
    engine_line(
        &log,
        &match &reason {
            Some(why) => {
                format!("{why}; exit code {exit_code} after {:.1} s", elapsed.as_secs_f64())
            }
            None => format!("exit code {exit_code} after {:.1} s", elapsed.as_secs_f64()),
        },
    );
    drop(log_complete);

    // The worktree goes while the parse reads the last lines; then the
    // findings, and one transaction for the end state and the findings.
    let (_, parsed) = tokio::join!(release(), parsing);
    let findings = match parsed {
        _ if job_status == JobStatus::Cancelled => Vec::new(),
        // Nothing recognised: a failed recipe still gets its `recipe_fail`.
        Ok(Ok(Ok(found))) if found.is_empty() => {
            let ctx = ParseContext { exit_code: Some(exit_code), ..ctx };
            crafting_parsers::generic_failure(&ctx).into_iter().collect()
        }
        Ok(Ok(Ok(found))) => found,
        Ok(Ok(Err(e))) => {
            engine_line(&log, &format!("findings could not be parsed: {e}"));
            Vec::new()
        }
        Ok(Err(_)) | Err(_) => return Err(Error::Stopped),
    };
    let findings = with_identities(shared, &job.project, &wt.sha, findings).await;
    let outcome =
        JobOutcome { findings, ..JobOutcome::unparsed(job_status, Some(exit_code), reason, &log) };
    finish(shared, &row, outcome).await
}

/// Declares a job's log complete when dropped.
struct CompleteOnDrop(Arc<process::LogProgress>);

impl Drop for CompleteOnDrop {
    fn drop(&mut self) {
        self.0.complete();
    }
}

/// Resolves with the bytes used once the job's folders use more than `quota`.
async fn watch_disk(roots: Vec<PathBuf>, quota: u64, every: Duration) -> u64 {
    loop {
        tokio::time::sleep(every).await;
        let roots = roots.clone();
        let used = tokio::task::spawn_blocking(move || {
            let refs: Vec<&Path> = roots.iter().map(PathBuf::as_path).collect();
            isolation::disk_usage(&refs)
        })
        .await
        .unwrap_or(0);
        if used > quota {
            return used;
        }
    }
}

/// A recipe's confinement: its environment, its jail, its cgroup and job folder.
struct Confined {
    env: Vec<(String, String)>,
    jail: Jail,
    cgroup: Option<JobCgroup>,
    job_dir: PathBuf,
}

/// Prepares the job folder (`home/`, `tmp/`), the project's cache folder,
/// ownership for a build user, the pids cgroup and the sandbox mounts.
/// `group` is the project's own group id (user isolation): the recipe runs
/// with it, and only it may enter the project's workspace and cache folders.
fn confine(
    shared: &Shared,
    job: &Job,
    worktree: &Path,
    network: bool,
    group: Option<u32>,
) -> Result<Confined> {
    use std::os::unix::fs::PermissionsExt;
    let cfg = &shared.config;
    let iso = &shared.isolation;
    let io = |what: &Path, e| Error::io(format!("preparing {}", what.display()), e);
    let job_dir = shared.ws.job_dir(&job.project, &job.id);
    let (home, tmp) = (job_dir.join("home"), job_dir.join("tmp"));
    for d in [&home, &tmp] {
        fs::create_dir_all(d).map_err(|e| io(d, e))?;
        fs::set_permissions(d, fs::Permissions::from_mode(0o700)).map_err(|e| io(d, e))?;
    }
    if let Some(parent) = job_dir.parent() {
        let _ = fs::set_permissions(parent, fs::Permissions::from_mode(0o711));
    }
    let caches = absolute(&cfg.caches_dir);
    let project_caches = caches.join(&job.project);
    fs::create_dir_all(&project_caches).map_err(|e| io(&project_caches, e))?;
    let mut env = recipe_env(cfg, job);
    let mut set = |k: &str, v: String| match env.iter_mut().find(|(key, _)| key == k) {
        Some(slot) => slot.1 = v,
        None => env.push((k.to_owned(), v)),
    };
    let user = iso.user.as_ref().map(|u| (u.uid, group.unwrap_or(u.gid)));
    if let Some((uid, gid)) = user {
        // The build user owns what the recipe writes, and nothing else: the
        // bare clone, the data folder and the other projects stay the service's.
        let _ = fs::set_permissions(&caches, fs::Permissions::from_mode(0o711));
        isolation::chown_tree(worktree, uid, gid).map_err(|e| io(worktree, e))?;
        isolation::chown_tree(&job_dir, uid, gid).map_err(|e| io(&job_dir, e))?;
        match group {
            // The project's folders let in its own group only; they stay the
            // service's, so no recipe can open them up.
            Some(g) => {
                shared.ws.protect_project(&job.project, Some(g))?;
                isolation::lock_project_caches(&project_caches, uid, g)
                    .map_err(|e| io(&project_caches, e))?;
            }
            None => {
                let owned = {
                    use std::os::unix::fs::MetadataExt;
                    fs::metadata(&project_caches).map(|m| m.uid() == uid).unwrap_or(false)
                };
                if !owned {
                    isolation::chown_tree(&project_caches, uid, gid)
                        .map_err(|e| io(&project_caches, e))?;
                }
            }
        }
        // git refuses a repository whose administrative folder (in the
        // service-owned bare clone) belongs to another user; trust this
        // worktree only, through command-line scope configuration.
        set("GIT_CONFIG_COUNT", "1".to_owned());
        set("GIT_CONFIG_KEY_0", "safe.directory".to_owned());
        set("GIT_CONFIG_VALUE_0", "*".to_owned());
    }
    let sealed = match iso.mode {
        IsolationMode::Bwrap => true,
        IsolationMode::User => user.is_some_and(|(uid, _)| uid != 0),
        IsolationMode::None => false,
    };
    let cgroup = JobCgroup::create(&job.id, cfg.max_processes).map(|c| c.sealed(sealed));
    let mut jail = Jail {
        user,
        network: true,
        cgroup_procs: cgroup.as_ref().map(JobCgroup::procs_file),
        nproc: user.filter(|(uid, _)| *uid != 0).map(|_| cfg.max_processes),
        ..Jail::default()
    };
    match iso.mode {
        IsolationMode::None => {}
        IsolationMode::User => {
            set("HOME", home.display().to_string());
            set("TMPDIR", tmp.display().to_string());
        }
        IsolationMode::Bwrap => {
            jail.bwrap = iso.bwrap.clone();
            jail.network = network;
            let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| absolute(p));
            jail.hide = vec![canon(&cfg.data_dir), shared.ws.root().to_path_buf(), canon(&caches)];
            jail.read_only = vec![shared.ws.clone_path(&job.project)];
            jail.read_write = vec![canon(worktree), canon(&project_caches)];
            jail.tmp = Some(tmp);
            set("TMPDIR", "/tmp".to_owned());
            let service_home = std::env::var_os("HOME").map(PathBuf::from);
            match service_home.filter(|h| h.is_absolute() && h.parent().is_some() && h.is_dir()) {
                Some(h) => {
                    let mut locations: Vec<String> =
                        env.iter().filter(|(k, _)| k != "HOME").map(|(_, v)| v.clone()).collect();
                    locations.push(h.join(".rustup").display().to_string());
                    jail.toolchains = isolation::toolchain_dirs(&h, &locations);
                    // bubblewrap started as the build user can only mount
                    // what that user can reach.
                    if let Some((uid, gid)) = user {
                        jail.toolchains.retain(|t| isolation::reachable_by(t, uid, gid));
                    }
                    jail.home = Some((home, h));
                }
                None => set("HOME", home.display().to_string()),
            }
        }
    }
    Ok(Confined { env, jail, cgroup, job_dir })
}

fn stop_reason(s: Stop) -> (JobStatus, &'static str) {
    match s {
        Stop::Cancel => (JobStatus::Cancelled, "cancelled"),
        Stop::Shutdown => (JobStatus::Failed, "service shut down, job stopped"),
    }
}

async fn stop_group(shared: &Shared, pgid: i32, id: &str, cgroup: Option<&JobCgroup>) {
    let grace = shared.config.kill_grace;
    let id = id.to_owned();
    let cgroup = cgroup.cloned();
    let left = tokio::task::spawn_blocking(move || {
        process::terminate_in(Some(pgid), &id, cgroup.as_ref(), grace, Duration::from_secs(30))
    })
    .await
    .unwrap_or(0);
    if left > 0 {
        tracing::error!(pgid, left, "recipe processes survived SIGKILL");
    }
}

async fn finish_without_run(
    shared: &Arc<Shared>,
    row: &JobRow,
    log: &Path,
    (status, why): (JobStatus, &'static str),
) -> Result<()> {
    engine_line(log, why);
    let _ = shared
        .workspace
        .send(Release { project: row.job.project.clone(), job_id: row.job.id.clone() })
        .await;
    finish(shared, row, JobOutcome::unparsed(status, None, Some(why.to_owned()), log)).await
}

/// The end state of a job that failed before its recipe ran.
fn failed(msg: String, log: &Path) -> JobOutcome {
    JobOutcome::unparsed(JobStatus::Failed, None, Some(msg), log)
}

/// Records the end state and announces it.
async fn finish(shared: &Arc<Shared>, row: &JobRow, outcome: JobOutcome) -> Result<()> {
    let status = outcome.status;
    if let Some(job) = shared.ledger.finish_job(row.job.id.clone(), outcome).await? {
        tracing::info!(job_id = %row.job.id, project = %row.job.project, status = status.as_str(), "job finished");
        let _ = shared.events.send(JobFinished { job });
    }
    Ok(())
}

/// Computes each finding's identity: a hash over kind, file, code, the
/// whitespace-normalised source line at the job's commit, and the occurrence
/// index among findings sharing those values; `kind|file|code` for findings
/// without a source line.
async fn with_identities(
    shared: &Shared,
    project: &str,
    sha: &str,
    findings: Vec<Finding>,
) -> Vec<(Finding, String)> {
    let wanted: Vec<(String, u32)> =
        findings.iter().filter_map(|f| Some((f.file.clone()?, f.line?))).collect();
    let lines = if wanted.is_empty() {
        HashMap::new()
    } else {
        source_lines(shared, project, sha, wanted).await
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    findings
        .into_iter()
        .map(|f| {
            let source = match (&f.file, f.line) {
                (Some(file), Some(line)) => lines.get(&(file.clone(), line)).map(|s| normalise(s)),
                _ => None,
            };
            let file = f.file.as_deref().unwrap_or("");
            let id = match source {
                Some(src) => {
                    let key = format!("{}|{}|{}|{}", f.kind.as_str(), file, f.code, src);
                    let n = seen.entry(key.clone()).or_default();
                    let occurrence = *n;
                    *n += 1;
                    short_hash(&format!("{key}|{occurrence}"))
                }
                None => short_hash(&format!("{}|{}|{}", f.kind.as_str(), file, f.code)),
            };
            (f, id)
        })
        .collect()
}

/// The source lines at `sha` that findings point at; none when the clone cannot say.
async fn source_lines(
    shared: &Shared,
    project: &str,
    sha: &str,
    wanted: Vec<(String, u32)>,
) -> HashMap<(String, u32), String> {
    let ask = SourceLines { project: project.to_owned(), sha: sha.to_owned(), wanted };
    match shared.workspace.send(ask).await {
        Ok(Ok(lines)) => lines,
        _ => HashMap::new(),
    }
}

fn normalise(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn short_hash(s: &str) -> String {
    hex::encode(&Sha256::digest(s.as_bytes())[..8])
}

/// Variables that locate toolchains; passed through when the service has them.
/// None of them carries a secret.
const TOOLCHAIN_VARS: &[&str] = &[
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "CARGO_HOME",
    "GOROOT",
    "GOPATH",
    "JAVA_HOME",
    "JAVA_HOME_21",
    "PYENV_ROOT",
    "NVM_DIR",
    "BUN_INSTALL",
    "DOTNET_ROOT",
    "GRADLE_HOME",
    "MAVEN_HOME",
];

/// The complete environment of a recipe: a fixed base, toolchain locations,
/// per-tool caches under `<caches>/<project>/`, and the job's own identifiers.
/// The runner then points `HOME` and `TMPDIR` at the job's own folder in
/// `user` and `bwrap` isolation.
/// Nothing else of the service's environment is passed on.
pub fn recipe_env(cfg: &Config, job: &Job) -> Vec<(String, String)> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut env = vec![
        (
            "PATH".to_owned(),
            var("PATH").unwrap_or_else(|| {
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()
            }),
        ),
        ("HOME".to_owned(), var("HOME").unwrap_or_else(|| "/tmp".to_owned())),
        ("LANG".to_owned(), var("LANG").unwrap_or_else(|| "C.UTF-8".to_owned())),
        ("CI".to_owned(), "true".to_owned()),
        ("CRAFTING_JOB_ID".to_owned(), job.id.clone()),
        ("CRAFTING_PROJECT".to_owned(), job.project.clone()),
        ("CRAFTING_RECIPE".to_owned(), job.recipe.clone()),
    ];
    for k in TOOLCHAIN_VARS {
        if let Some(v) = var(k) {
            env.push(((*k).to_owned(), v));
        }
    }
    if let Some(files) = &job.recipe_snapshot.changed_files {
        env.push(("CRAFTING_CHANGED_FILES".to_owned(), files.join(" ")));
    }
    // Caches are per project, so a recipe never reads what another
    // project's recipe left (and in bwrap mode sees only its own).
    let caches = absolute(&cfg.caches_dir).join(&job.project);
    let cache = |sub: &str| caches.join(sub).display().to_string();
    env.push(("CARGO_TARGET_DIR".to_owned(), cache("cargo-target")));
    env.push(("PIP_CACHE_DIR".to_owned(), cache("pip")));
    env.push(("npm_config_cache".to_owned(), cache("npm")));
    env.push(("GOCACHE".to_owned(), cache("go-build")));
    env.push(("GOMODCACHE".to_owned(), cache("go-mod")));
    env
}

pub(crate) fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
