//! [`CraftingTable`]: the one handle an embedding program, the HTTP host and
//! the MCP server use. It validates input, writes the ledger and talks to the
//! actors; nothing outside this crate touches SQL or actors directly.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::NaiveDate;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

use crate::config::Config;
use crate::digest::{DayDigest, DigestScheduler, DigestService, Render, RunNow, RunReport};
use crate::error::{Error, Result};
use crate::ledger::{JobOutcome, Ledger, now};
use crate::model::{
    Caller, FindingRecord, Job, JobFilter, JobRequest, JobStatus, NOTIFY_EVENTS, NewToken,
    PatchAttempt, PatchFilter, Project, ProjectSpec, RecipeSnapshot, RunnerStats, Token,
};
use crate::parsers::ParserRegistry;
use crate::patcher::{Patcher, Submit};
use crate::process;
use crate::runner::{self, Cancel, Drain, Enqueue, JobFinished, Runner, Shared, Stats};
use crate::validate;
use crate::workspace::{RemoveProject, Workspace, WorkspaceManager};

/// Lines returned by [`CraftingTable::get_job`] as the log tail.
pub const TAIL_LINES: usize = 200;
/// The tail is read from at most this many bytes at the end of the log.
const TAIL_MAX_BYTES: u64 = 256 * 1024;
/// Most subprojects a project may have.
const MAX_SUBPROJECTS: usize = 200;
/// Longest recipe command accepted.
const MAX_COMMAND: usize = 16 * 1024;

/// The running engine. Cheap to clone; every clone drives the same engine.
#[derive(Clone)]
pub struct CraftingTable {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    ledger: Ledger,
    ws: Arc<Workspace>,
    workspace: Addr<WorkspaceManager>,
    runner: Addr<Runner>,
    events: broadcast::Sender<JobFinished>,
    admin_bearer_file: Option<PathBuf>,
    isolation: crate::isolation::Isolation,
    digest: Addr<DigestScheduler>,
    digest_service: DigestService,
    patcher: Addr<Patcher>,
    /// Live tokens by the sha256 of their bearer, filled on first use and
    /// emptied of a token the moment it is revoked: every request
    /// authenticates, and the ledger need not be asked each time.
    live_tokens: std::sync::RwLock<HashMap<String, Token>>,
}

/// A job and the last lines of its log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobView {
    /// The job.
    pub job: Job,
    /// The last [`TAIL_LINES`] lines of its log.
    pub log_tail: String,
}

/// New, fixed and still-open findings between two jobs, on finding identity.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Comparison {
    /// The job compared against, when there was one.
    pub base_job_id: Option<String>,
    /// In this job, not in the base.
    pub new: Vec<FindingRecord>,
    /// In the base, not in this job.
    pub fixed: Vec<FindingRecord>,
    /// In both (this job's records).
    pub open: Vec<FindingRecord>,
}

impl CraftingTable {
    /// Starts the engine: creates the folders, opens and migrates the ledger,
    /// mints the first admin token when there is none, sweeps jobs left
    /// running by a previous process, and starts the actors. Must be called
    /// inside a running actix system.
    pub async fn start(config: Config) -> Result<CraftingTable> {
        Self::start_with_parsers(config, crafting_parsers::Registry::with_defaults()).await
    }

    /// Like [`CraftingTable::start`] with a parser table of the caller's.
    pub async fn start_with_parsers(
        config: Config,
        parsers: crafting_parsers::Registry,
    ) -> Result<CraftingTable> {
        for dir in [&config.data_dir, &config.workspace_dir, &config.caches_dir] {
            fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        fs::create_dir_all(config.logs_dir())
            .map_err(|e| Error::io("creating the logs folder", e))?;
        // The data folder holds the ledger, the admin bearer and every log:
        // only the service's own user may enter it.
        fs::set_permissions(&config.data_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| Error::io(format!("restricting {}", config.data_dir.display()), e))?;
        let isolation = {
            let cfg = config.clone();
            tokio::task::spawn_blocking(move || crate::isolation::detect(&cfg))
                .await
                .map_err(|e| Error::Pool(format!("isolation probe failed: {e}")))??
        };
        let ledger = Ledger::open(&config.ledger_path(), config.runner_workers + 8).await?;
        let admin_bearer_file = ensure_admin(&config, &ledger).await?;
        let ws = Arc::new(Workspace::new(config.workspace_dir.clone())?);
        let workspace = {
            let ws = ws.clone();
            Supervisor::start(move |_| WorkspaceManager::new(ws))
        };
        let parsers_addr = {
            let reg = Arc::new(std::sync::Mutex::new(Some(parsers)));
            Supervisor::start(move |_| {
                let r = reg.lock().expect("not poisoned").take().unwrap_or_default();
                ParserRegistry::new(r)
            })
        };
        let (events, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            config: config.clone(),
            ledger: ledger.clone(),
            workspace: workspace.clone(),
            ws: ws.clone(),
            parsers: parsers_addr,
            events: events.clone(),
            isolation: isolation.clone(),
        });
        sweep_orphans(&shared).await?;
        if isolation.mode == crate::isolation::IsolationMode::User {
            lock_down_projects(&config, &ws, &ledger, &isolation).await?;
        }
        let process_limit = if crate::isolation::JobCgroup::available() {
            "pids cgroup per job"
        } else if isolation.user.as_ref().is_some_and(|u| u.uid != 0) {
            "RLIMIT_NPROC of the build user"
        } else {
            "none (no writable pids cgroup)"
        };
        tracing::info!(
            isolation = isolation.mode.as_str(),
            max_processes = config.max_processes,
            process_limit,
            "recipe isolation: {}",
            isolation.describe()
        );
        if isolation.mode == crate::isolation::IsolationMode::None {
            tracing::warn!(
                "recipes run as this service's own user without a sandbox: every registered \
                 repository is trusted with the service's files"
            );
        }
        let runner = {
            let shared = shared.clone();
            Supervisor::start(move |_| Runner::new(shared.clone()))
        };
        let patcher = {
            let (shared, runner) = (shared.clone(), runner.clone());
            Supervisor::start(move |_| Patcher::new(shared.clone(), runner.clone()))
        };
        crate::patcher::sweep(&ledger, &patcher).await?;
        let digest_service = DigestService::new(ledger.clone(), &config.digest)?;
        let digest = DigestScheduler::start(digest_service.clone());
        let table = CraftingTable {
            inner: Arc::new(Inner {
                config,
                ledger,
                ws,
                workspace,
                runner,
                events,
                admin_bearer_file,
                isolation,
                digest,
                digest_service,
                patcher,
                live_tokens: Default::default(),
            }),
        };
        for row in table.inner.ledger.jobs_in_state(JobStatus::Queued).await? {
            table.inner.runner.do_send(Enqueue { job_id: row.job.id });
        }
        Ok(table)
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// How recipes are isolated (chosen at start-up).
    pub fn isolation(&self) -> crate::isolation::IsolationMode {
        self.inner.isolation.mode
    }

    /// The isolation chosen at start-up, with its build user and bubblewrap path.
    pub fn isolation_details(&self) -> &crate::isolation::Isolation {
        &self.inner.isolation
    }

    /// Where the first admin bearer was written, when this start minted it.
    pub fn admin_bearer_file(&self) -> Option<&PathBuf> {
        self.inner.admin_bearer_file.as_ref()
    }

    /// Subscribes to [`JobFinished`] events.
    pub fn subscribe(&self) -> broadcast::Receiver<JobFinished> {
        self.inner.events.subscribe()
    }

    // ----- tokens -------------------------------------------------------------------------

    /// Mints a token; returns it with its bearer, which is not stored and is
    /// shown only this once.
    pub async fn mint_token(&self, req: NewToken) -> Result<(Token, String)> {
        validate::name("token", &req.name)?;
        for cidr in &req.ip_cidrs {
            validate_cidr(cidr)?;
        }
        let bearer = new_bearer();
        let token = Token {
            name: req.name,
            is_admin: req.is_admin,
            ip_cidrs: req.ip_cidrs,
            created_at: now(),
            revoked_at: None,
        };
        let token = self.inner.ledger.insert_token(token, hash_bearer(&bearer)).await?;
        Ok((token, bearer))
    }

    /// Every token, revoked ones included, without secrets.
    pub async fn list_tokens(&self) -> Result<Vec<Token>> {
        self.inner.ledger.list_tokens().await
    }

    /// Revokes a token by name.
    pub async fn revoke_token(&self, name: &str) -> Result<()> {
        self.inner.ledger.revoke_token(name.to_owned()).await?;
        self.inner
            .live_tokens
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, t| t.name != name);
        Ok(())
    }

    /// The live token a bearer belongs to. Lookup is by the bearer's sha256,
    /// so no comparison ever runs on the secret itself.
    pub async fn authenticate(&self, bearer: &str) -> Result<Option<Token>> {
        if bearer.is_empty() || bearer.len() > 512 {
            return Ok(None);
        }
        let hash = hash_bearer(bearer);
        if let Some(t) = self.inner.live_tokens.read().unwrap_or_else(|p| p.into_inner()).get(&hash)
        {
            return Ok(Some(t.clone()));
        }
        let found = self.inner.ledger.token_by_secret(hash.clone()).await?;
        if let Some(t) = &found {
            let mut cache = self.inner.live_tokens.write().unwrap_or_else(|p| p.into_inner());
            // Only live tokens that were used land here; the bound is a guard.
            if cache.len() >= 10_000 {
                cache.clear();
            }
            cache.insert(hash, t.clone());
        }
        Ok(found)
    }

    // ----- projects -----------------------------------------------------------------------

    fn check_spec(&self, spec: &ProjectSpec) -> Result<(Vec<String>, ProjectSpec)> {
        let cfg = &self.inner.config;
        validate::name("project", &spec.name)?;
        validate::git_url(&spec.git_url, &cfg.local_git_roots, self.inner.ws.root())?;
        if let Some(b) = &spec.default_branch {
            validate::git_ref(b)?;
        }
        if spec.subprojects.is_empty() || spec.subprojects.len() > MAX_SUBPROJECTS {
            return Err(Error::invalid(
                "invalid_subprojects",
                format!(
                    "a project needs 1 to {MAX_SUBPROJECTS} subprojects, each with a path, a language and recipes"
                ),
            ));
        }
        let mut spec = spec.clone();
        let mut paths = BTreeSet::new();
        let mut languages = BTreeSet::new();
        for sub in &mut spec.subprojects {
            sub.path = validate::subproject_path(&sub.path)?;
            if !paths.insert(sub.path.clone()) {
                return Err(Error::invalid(
                    "invalid_subprojects",
                    format!("subproject {:?} is listed twice", sub.path),
                ));
            }
            let lang = sub.language.trim().to_ascii_lowercase();
            if lang.is_empty()
                || lang.len() > 32
                || !lang.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(Error::invalid(
                    "invalid_language",
                    format!(
                        "language {:?} of subproject {:?} must be a short name such as rust, python, go or typescript",
                        sub.language, sub.path
                    ),
                ));
            }
            sub.language = lang.clone();
            languages.insert(lang);
            if sub.recipes.is_empty() {
                return Err(Error::invalid(
                    "invalid_recipe",
                    format!(
                        "subproject {:?} has no recipes; add at least one, e.g. {{\"test\": \"make test\"}}",
                        sub.path
                    ),
                ));
            }
            for (name, cmd) in &sub.recipes {
                validate::recipe_name(name)?;
                if cmd.trim().is_empty() || cmd.len() > MAX_COMMAND || cmd.contains('\0') {
                    return Err(Error::invalid(
                        "invalid_recipe",
                        format!(
                            "recipe {name:?} of subproject {:?} must be a non-empty shell command of at most {MAX_COMMAND} bytes",
                            sub.path
                        ),
                    ));
                }
            }
            if let Some(t) = sub.timeout_secs
                && (t == 0 || t > 7 * 24 * 3600)
            {
                return Err(Error::invalid(
                    "invalid_timeout",
                    format!(
                        "timeout_secs of subproject {:?} must be between 1 and 604800",
                        sub.path
                    ),
                ));
            }
        }
        for addr in &spec.notify.email {
            validate::email(addr)?;
        }
        for ev in &spec.notify.on {
            if !NOTIFY_EVENTS.contains(&ev.as_str()) {
                return Err(Error::invalid(
                    "invalid_notify",
                    format!(
                        "notify event {ev:?} is unknown; use any of {}",
                        NOTIFY_EVENTS.join(", ")
                    ),
                ));
            }
        }
        Ok((languages.into_iter().collect(), spec))
    }

    /// Registers a project owned by the caller.
    pub async fn create_project(&self, caller: &Caller, spec: ProjectSpec) -> Result<Project> {
        let (languages, spec) = self.check_spec(&spec)?;
        let ts = now();
        let project = Project {
            name: spec.name.clone(),
            owner: caller.token.clone(),
            git_url: validate::redact_credentials(&spec.git_url),
            default_branch: spec.default_branch.clone(),
            languages,
            subprojects: spec.subprojects,
            notify: spec.notify,
            created_at: ts.clone(),
            updated_at: ts,
        };
        self.inner.ledger.insert_project(project.clone(), spec.git_url).await?;
        Ok(project)
    }

    /// The caller's projects (every project for an admin), by name.
    pub async fn list_projects(&self, caller: &Caller) -> Result<Vec<Project>> {
        let owner = (!caller.is_admin).then(|| caller.token.clone());
        Ok(self.inner.ledger.list_projects(owner).await?.into_iter().map(|r| r.project).collect())
    }

    /// One project; NotFound when missing or owned by another token.
    pub async fn get_project(&self, caller: &Caller, name: &str) -> Result<Project> {
        Ok(self.owned_project(caller, name).await?.project)
    }

    async fn owned_project(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<crate::ledger::ProjectRow> {
        match self.inner.ledger.get_project(name.to_owned()).await? {
            Some(row) if caller.is_admin || row.project.owner == caller.token => Ok(row),
            _ => Err(Error::NotFound { what: "project" }),
        }
    }

    /// Replaces a project's settings; the name in `spec` must match `name`.
    pub async fn update_project(
        &self,
        caller: &Caller,
        name: &str,
        spec: ProjectSpec,
    ) -> Result<Project> {
        let row = self.owned_project(caller, name).await?;
        if spec.name != name {
            return Err(Error::invalid(
                "invalid_name",
                format!(
                    "the body names project {:?} but the path names {name:?}; projects cannot be renamed",
                    spec.name
                ),
            ));
        }
        let (languages, spec) = self.check_spec(&spec)?;
        let project = Project {
            git_url: validate::redact_credentials(&spec.git_url),
            default_branch: spec.default_branch.clone(),
            languages,
            subprojects: spec.subprojects,
            notify: spec.notify,
            updated_at: now(),
            ..row.project
        };
        self.inner.ledger.update_project(project.clone(), spec.git_url).await?;
        Ok(project)
    }

    /// Deletes a project with its jobs, findings, patch attempts, workspace
    /// and logs. Running jobs of the project are cancelled first.
    pub async fn delete_project(&self, caller: &Caller, name: &str) -> Result<()> {
        self.owned_project(caller, name).await?;
        let filter = JobFilter { project: Some(name.to_owned()), status: None, limit: Some(500) };
        for status in [JobStatus::Queued, JobStatus::Running] {
            let jobs = self
                .inner
                .ledger
                .list_jobs(JobFilter { status: Some(status), ..filter.clone() }, None)
                .await?;
            for job in jobs {
                let _ = self.cancel_job(&Caller::admin("system"), &job.id).await;
            }
        }
        let logs = self.inner.ledger.delete_project(name.to_owned()).await?;
        for rel in logs {
            let _ = fs::remove_file(runner::log_file(&self.inner.config, &rel));
        }
        let _ = fs::remove_dir_all(self.inner.config.logs_dir().join(name));
        self.inner
            .workspace
            .send(RemoveProject { project: name.to_owned() })
            .await
            .map_err(|_| Error::Stopped)??;
        if self.inner.isolation.mode == crate::isolation::IsolationMode::User {
            // The project's group id may go to a project registered later
            // (ledger ids can be reused): none of its caches may stay behind.
            let dir = runner::absolute(&self.inner.config.caches_dir).join(name);
            tokio::task::spawn_blocking(move || match fs::remove_dir_all(&dir) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io(format!("removing {}", dir.display()), e)),
            })
            .await
            .map_err(|e| Error::Pool(e.to_string()))??;
        }
        Ok(())
    }

    // ----- jobs ---------------------------------------------------------------------------

    /// Queues a recipe run. The recipe is snapshotted now: editing the project
    /// later does not change this job.
    pub async fn enqueue(&self, caller: &Caller, project: &str, req: JobRequest) -> Result<Job> {
        let row = self.owned_project(caller, project).await?;
        validate::recipe_name(&req.recipe)?;
        if let Some(r) = &req.git_ref {
            validate::git_ref(r)?;
        }
        let subs = &row.project.subprojects;
        let sub = match &req.subproject {
            Some(path) => {
                let path = validate::subproject_path(path)?;
                subs.iter().find(|s| s.path == path).ok_or_else(|| {
                    Error::invalid(
                        "unknown_subproject",
                        format!(
                            "project {project:?} has no subproject {path:?}; it has {}",
                            subs.iter()
                                .map(|s| format!("{:?}", s.path))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?
            }
            None if subs.len() == 1 => &subs[0],
            None => {
                return Err(Error::invalid(
                    "missing_subproject",
                    format!(
                        "project {project:?} has {} subprojects; say which one with \"subproject\"",
                        subs.len()
                    ),
                ));
            }
        };
        let command = sub.recipes.get(&req.recipe).ok_or_else(|| {
            Error::invalid(
                "unknown_recipe",
                format!(
                    "subproject {:?} has no recipe {:?}; it has {}",
                    sub.path,
                    req.recipe,
                    sub.recipes.keys().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        let id = Job::new_id();
        let snapshot = RecipeSnapshot {
            recipe: req.recipe.clone(),
            command: command.clone(),
            subproject: sub.path.clone(),
            language: sub.language.clone(),
            timeout_secs: sub
                .timeout_secs
                .unwrap_or(self.inner.config.default_timeout.as_secs().max(1)),
            network: sub.network,
            changed_files: None,
        };
        let job = Job::queued(id.clone(), project, snapshot, req.git_ref);
        self.inner.ledger.insert_job(job.clone(), job.log_path()).await?;
        self.inner.runner.do_send(Enqueue { job_id: id });
        Ok(job)
    }

    async fn owned_job(&self, caller: &Caller, id: &str) -> Result<crate::ledger::JobRow> {
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Error::NotFound { what: "job" });
        }
        match self.inner.ledger.get_job(id.to_owned()).await? {
            Some(row) if caller.is_admin || row.owner == caller.token => Ok(row),
            _ => Err(Error::NotFound { what: "job" }),
        }
    }

    /// A job with the last 200 lines of its log.
    pub async fn get_job(&self, caller: &Caller, id: &str) -> Result<JobView> {
        let row = self.owned_job(caller, id).await?;
        let path = runner::log_file(&self.inner.config, &row.log_path);
        let log_tail = tokio::task::spawn_blocking(move || tail(&path, TAIL_LINES))
            .await
            .map_err(|e| Error::Pool(e.to_string()))?;
        Ok(JobView { job: row.job, log_tail })
    }

    /// Jobs newest first: the caller's (every job for an admin), filtered.
    pub async fn list_jobs(&self, caller: &Caller, filter: JobFilter) -> Result<Vec<Job>> {
        let owner = (!caller.is_admin).then(|| caller.token.clone());
        self.inner.ledger.list_jobs(filter, owner).await
    }

    // ----- patches ------------------------------------------------------------------------

    /// Whether the patch loop is on (a forge is configured).
    pub fn patcher_enabled(&self) -> bool {
        self.inner.config.patcher.enabled()
    }

    /// Queues a patch attempt on a finished job's finding: `finding_id`, or
    /// the most severe actionable finding when absent. The attempt runs in
    /// the background; follow it with [`CraftingTable::get_patch`].
    pub async fn request_patch(
        &self,
        caller: &Caller,
        job_id: &str,
        finding_id: Option<i64>,
    ) -> Result<PatchAttempt> {
        let row = self.owned_job(caller, job_id).await?;
        let settings = &self.inner.config.patcher;
        if !settings.enabled() {
            return Err(Error::unavailable("patcher_unconfigured", settings.off_message()));
        }
        if !row.job.status.is_terminal() {
            return Err(Error::conflict(
                "job_not_finished",
                format!(
                    "job {job_id} is {}; ask for a patch once it has finished",
                    row.job.status.as_str()
                ),
            ));
        }
        let ledger = &self.inner.ledger;
        if let Some(of) = ledger.patch_of_verify_job(row.job.id.clone()).await? {
            return Err(Error::invalid(
                "verify_job",
                format!(
                    "job {job_id} verifies patch attempt {of}; its commit carries that \
                     attempt's change, so ask for a patch on a job of the original branch"
                ),
            ));
        }
        let findings = ledger.findings(row.job.id.clone()).await?;
        let has_agent = settings.agent.is_some();
        let finding = match finding_id {
            Some(fid) => {
                let f = findings
                    .iter()
                    .find(|f| f.id == fid)
                    .ok_or(Error::NotFound { what: "finding" })?;
                crate::patcher::actionable(f)
                    .map_err(|why| Error::invalid("finding_not_actionable", why))?;
                if !has_agent && !crate::patcher::native::has_tool_fix(&f.finding) {
                    return Err(Error::invalid(
                        "no_fix_source",
                        "this finding carries no fix of its tool and no agent is configured; \
                         set CRAFTING_AGENT_KIND (openai, anthropic or command) to draft fixes \
                         with an agent",
                    ));
                }
                f
            }
            None => {
                let blocked =
                    ledger.blocked_identities(row.job.clone(), settings.max_attempts).await?;
                crate::patcher::pick(&findings, &blocked, has_agent).ok_or_else(|| {
                    Error::invalid(
                        "no_actionable_finding",
                        format!(
                            "job {job_id} has no finding to patch: none of its {} findings is a \
                             lint with a file and line or a vulnerability with a fixed version{} \
                             that is not already being fixed or out of attempts",
                            findings.len(),
                            if has_agent { "" } else { " carrying its tool's own fix" }
                        ),
                    )
                })?
            }
        };
        let attempt = ledger
            .insert_patch(crate::ledger::NewPatch {
                job_id: row.job.id.clone(),
                finding_id: finding.id,
                max_attempts: settings.max_attempts,
            })
            .await?;
        self.inner.patcher.do_send(Submit { project: row.job.project, attempt_id: attempt.id });
        Ok(attempt)
    }

    /// Patch attempts newest first: the caller's (every one for an admin).
    pub async fn list_patches(
        &self,
        caller: &Caller,
        filter: PatchFilter,
    ) -> Result<Vec<PatchAttempt>> {
        let owner = (!caller.is_admin).then(|| caller.token.clone());
        self.inner.ledger.list_patches(filter, owner).await
    }

    /// One patch attempt of the caller's.
    pub async fn get_patch(&self, caller: &Caller, id: i64) -> Result<PatchAttempt> {
        match self.inner.ledger.get_patch(id).await? {
            Some((p, owner)) if caller.is_admin || owner == caller.token => Ok(p),
            _ => Err(Error::NotFound { what: "patch attempt" }),
        }
    }

    /// The path of a job's log file, for streaming. The file may not exist
    /// yet for a queued job.
    pub async fn job_log_path(&self, caller: &Caller, id: &str) -> Result<PathBuf> {
        let row = self.owned_job(caller, id).await?;
        Ok(runner::log_file(&self.inner.config, &row.log_path))
    }

    /// The job's current record (status, log size), for followers.
    pub async fn job_status(&self, caller: &Caller, id: &str) -> Result<Job> {
        Ok(self.owned_job(caller, id).await?.job)
    }

    /// Cancels a queued or running job and returns its record. A job that has
    /// already ended is a conflict.
    pub async fn cancel_job(&self, caller: &Caller, id: &str) -> Result<Job> {
        let row = self.owned_job(caller, id).await?;
        if row.job.status.is_terminal() {
            return Err(Error::conflict(
                "job_finished",
                format!("job {id} already ended ({}); nothing to cancel", row.job.status.as_str()),
            ));
        }
        let mut rx = self.subscribe();
        let known = self
            .inner
            .runner
            .send(Cancel { job_id: id.to_owned() })
            .await
            .map_err(|_| Error::Stopped)?;
        let current = self.inner.ledger.get_job(id.to_owned()).await?;
        let still_queued = current.as_ref().map(|r| r.job.status) == Some(JobStatus::Queued);
        if still_queued || !known {
            // Taken off the queue (or never reached it): record it here.
            let log = runner::log_file(&self.inner.config, &row.log_path);
            let why = Some("cancelled before it started".to_owned());
            let outcome = JobOutcome::unparsed(JobStatus::Cancelled, None, why, &log);
            if let Some(job) = self.inner.ledger.finish_job(id.to_owned(), outcome).await? {
                let _ = self.inner.events.send(JobFinished { job });
            }
        } else {
            // Running: wait for the runner to record the end.
            let wait = async {
                loop {
                    match rx.recv().await {
                        Ok(ev) if ev.job.id == id => break,
                        Err(broadcast::error::RecvError::Closed) => break,
                        _ => {}
                    }
                }
            };
            let _ =
                tokio::time::timeout(self.inner.config.kill_grace + Duration::from_secs(60), wait)
                    .await;
        }
        Ok(self.owned_job(caller, id).await?.job)
    }

    /// Waits until the job reaches an end state, or `timeout` passes; returns
    /// the job as it is then.
    pub async fn wait_job(&self, caller: &Caller, id: &str, timeout: Duration) -> Result<Job> {
        let mut rx = self.subscribe();
        let job = self.owned_job(caller, id).await?.job;
        if job.status.is_terminal() {
            return Ok(job);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let step = tokio::time::timeout_at(deadline, rx.recv()).await;
            match step {
                Err(_) => break,
                Ok(Ok(ev)) if ev.job.id == id => return Ok(ev.job),
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    let job = self.owned_job(caller, id).await?.job;
                    if job.status.is_terminal() {
                        return Ok(job);
                    }
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => break,
                Ok(Ok(_)) => {}
            }
        }
        Ok(self.owned_job(caller, id).await?.job)
    }

    /// A job's findings in the order the parsers reported them.
    pub async fn findings(&self, caller: &Caller, id: &str) -> Result<Vec<FindingRecord>> {
        self.owned_job(caller, id).await?;
        self.inner.ledger.findings(id.to_owned()).await
    }

    /// Compares a job's findings with another job's (by default the previous
    /// finished job of the same project, subproject and recipe), on identity.
    pub async fn compare(
        &self,
        caller: &Caller,
        id: &str,
        base: Option<&str>,
    ) -> Result<Comparison> {
        let row = self.owned_job(caller, id).await?;
        let base_id = match base {
            Some(b) => {
                let other = self.owned_job(caller, b).await?.job;
                let lineage = |j: &Job| (j.project.clone(), j.subproject.clone(), j.recipe.clone());
                if lineage(&other) != lineage(&row.job) {
                    return Err(Error::invalid(
                        "compare_mismatch",
                        format!(
                            "job {b} ran recipe {:?} of {}/{}, job {id} ran {:?} of {}/{}; only \
                             jobs of the same project, subproject and recipe can be compared",
                            other.recipe,
                            other.project,
                            other.subproject,
                            row.job.recipe,
                            row.job.project,
                            row.job.subproject
                        ),
                    ));
                }
                Some(other.id)
            }
            None => self.inner.ledger.previous_job(row.job.clone()).await?,
        };
        let current = self.inner.ledger.findings(id.to_owned()).await?;
        let before = match &base_id {
            Some(b) => self.inner.ledger.findings(b.clone()).await?,
            None => Vec::new(),
        };
        let before_ids: BTreeSet<&str> = before.iter().map(|f| f.identity.as_str()).collect();
        let now_ids: BTreeSet<&str> = current.iter().map(|f| f.identity.as_str()).collect();
        let fixed =
            before.iter().filter(|f| !now_ids.contains(f.identity.as_str())).cloned().collect();
        let (open, new) =
            current.iter().cloned().partition(|f| before_ids.contains(f.identity.as_str()));
        Ok(Comparison { base_job_id: base_id, new, fixed, open })
    }

    /// Runner figures.
    pub async fn stats(&self) -> Result<RunnerStats> {
        self.inner.runner.send(Stats).await.map_err(|_| Error::Stopped)
    }

    /// `PRAGMA integrity_check` on the ledger (`ok` when sound).
    pub async fn integrity_check(&self) -> Result<String> {
        self.inner.ledger.integrity_check().await
    }

    /// Stops taking jobs, waits up to `grace` for running jobs to end, then
    /// stops the rest (their process groups are killed and they are recorded
    /// as failed with the reason "service shut down, job stopped").
    pub async fn shutdown(&self, grace: Duration) {
        let running =
            self.inner.runner.send(Drain { stop_running: false }).await.unwrap_or_default();
        let deadline = tokio::time::Instant::now() + grace;
        for id in &running {
            let _ = self
                .wait_job(
                    &Caller::admin("system"),
                    id,
                    deadline.saturating_duration_since(tokio::time::Instant::now()),
                )
                .await;
        }
        let left = self.inner.runner.send(Drain { stop_running: true }).await.unwrap_or_default();
        for id in &left {
            let _ = self
                .wait_job(
                    &Caller::admin("system"),
                    id,
                    self.inner.config.kill_grace + Duration::from_secs(30),
                )
                .await;
        }
    }

    // ----- digest -------------------------------------------------------------------------

    /// The digest of `date` for every project, as `GET /digests/{date}`
    /// serves it (see [`crate::digest`]).
    pub async fn render_digest(&self, date: NaiveDate) -> Result<DayDigest> {
        self.inner.digest.send(Render { date }).await.map_err(|_| Error::Stopped)?
    }

    /// Runs a date's digest now (the newest date whose window has closed
    /// when `date` is absent), as `POST /admin/digest/run-now` does. A dry
    /// run sends and records nothing and returns the rendered digests; a real
    /// run without SMTP fails with `smtp_unconfigured`.
    pub async fn run_digest_now(
        &self,
        date: Option<NaiveDate>,
        dry_run: bool,
    ) -> Result<RunReport> {
        self.inner.digest.send(RunNow { date, dry_run }).await.map_err(|_| Error::Stopped)?
    }

    /// The digest service the scheduler uses: its clock, and its `tick` for
    /// driving a scheduled run by hand.
    pub fn digest(&self) -> &DigestService {
        &self.inner.digest_service
    }
}

/// Writes the first admin bearer when the ledger has no token yet.
async fn ensure_admin(config: &Config, ledger: &Ledger) -> Result<Option<PathBuf>> {
    if ledger.token_count().await? > 0 {
        return Ok(None);
    }
    let bearer = new_bearer();
    let path = config.admin_bearer_path();
    // The file goes in place before the token exists: a crash in between
    // leaves no token, and the next start writes a fresh pair.
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
        f.write_all(format!("{bearer}\n").as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    }
    fs::rename(&tmp, &path).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    let token = Token {
        name: "admin".to_owned(),
        is_admin: true,
        ip_cidrs: Vec::new(),
        created_at: now(),
        revoked_at: None,
    };
    ledger.insert_token(token, hash_bearer(&bearer)).await?;
    Ok(Some(path))
}

/// In user isolation, at start-up: hands every project's workspace and cache
/// folders to the project's own group (an older version left them open to
/// any recipe that could name them), and closes (0700) folders that belong
/// to no registered project.
async fn lock_down_projects(
    config: &Config,
    ws: &Arc<Workspace>,
    ledger: &Ledger,
    iso: &crate::isolation::Isolation,
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let Some(uid) = iso.user.as_ref().map(|u| u.uid) else { return Ok(()) };
    let mut groups = std::collections::HashMap::new();
    for row in ledger.list_projects(None).await? {
        match crate::isolation::project_gid(config.project_gid_base, row.id) {
            Ok(g) => {
                groups.insert(row.project.name, g);
            }
            Err(e) => tracing::warn!(project = %row.project.name, error = %e, "no project group"),
        }
    }
    let ws = ws.clone();
    let caches = runner::absolute(&config.caches_dir);
    tokio::task::spawn_blocking(move || {
        let _ = fs::set_permissions(&caches, fs::Permissions::from_mode(0o711));
        let folders = |root: &std::path::Path| -> Vec<(String, PathBuf)> {
            fs::read_dir(root)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect()
        };
        let close = |dir: &std::path::Path| {
            if let Err(e) = fs::set_permissions(dir, fs::Permissions::from_mode(0o700)) {
                tracing::warn!(folder = %dir.display(), error = %e, "could not close folder");
            }
        };
        for (name, path) in folders(ws.root()) {
            match groups.get(&name) {
                Some(g) => {
                    if let Err(e) = ws.protect_project(&name, Some(*g)) {
                        tracing::warn!(project = %name, error = %e, "could not protect project");
                    }
                }
                None => close(&path),
            }
        }
        for (name, path) in folders(&caches) {
            match groups.get(&name) {
                Some(g) => {
                    if let Err(e) = crate::isolation::lock_project_caches(&path, uid, *g) {
                        tracing::warn!(project = %name, error = %e, "could not protect caches");
                    }
                }
                None => close(&path),
            }
        }
    })
    .await
    .map_err(|e| Error::Pool(e.to_string()))
}

/// Marks jobs left `running` by a previous process as failed, kills what is
/// left of their processes and removes their worktrees.
async fn sweep_orphans(shared: &Shared) -> Result<()> {
    for row in shared.ledger.jobs_in_state(JobStatus::Running).await? {
        let id = row.job.id.clone();
        let (pgid, start) = (row.pgid, row.pgid_start_ticks);
        let id2 = id.clone();
        let left = tokio::task::spawn_blocking(move || process::kill_orphan(pgid, start, &id2))
            .await
            .unwrap_or(0);
        if left > 0 {
            tracing::error!(job_id = %id, left, "orphaned recipe processes survived SIGKILL");
        }
        let log = runner::log_file(&shared.config, &row.log_path);
        let why = "runner restart, job orphaned";
        runner::engine_line(&log, why);
        let outcome = JobOutcome::unparsed(JobStatus::Failed, Some(-1), Some(why.to_owned()), &log);
        shared.ledger.finish_job(id.clone(), outcome).await?;
        let ws = shared.ws.clone();
        let project = row.job.project.clone();
        let _ = tokio::task::spawn_blocking(move || {
            ws.with_project_lock(&project, || ws.release(&project, &id))
        })
        .await;
        tracing::warn!(job_id = %row.job.id, "job orphaned by a restart marked failed");
    }
    Ok(())
}

fn new_bearer() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("ct_{}", hex::encode(bytes))
}

fn hash_bearer(bearer: &str) -> String {
    hex::encode(Sha256::digest(bearer.as_bytes()))
}

/// Checks `a.b.c.d/n` or an IPv6 `x::y/n` network.
pub fn validate_cidr(cidr: &str) -> Result<()> {
    let bad = || {
        Error::invalid(
            "invalid_cidr",
            format!("{cidr:?} is not a network in CIDR notation such as 192.168.1.0/24 or ::1/128"),
        )
    };
    let (addr, bits) = cidr.split_once('/').ok_or_else(bad)?;
    let bits: u8 = bits.parse().map_err(|_| bad())?;
    match addr.parse::<std::net::IpAddr>().map_err(|_| bad())? {
        std::net::IpAddr::V4(_) if bits <= 32 => Ok(()),
        std::net::IpAddr::V6(_) if bits <= 128 => Ok(()),
        _ => Err(bad()),
    }
}

/// The last `lines` lines of a file, read backwards from its end in blocks,
/// never the whole file, and never more than 256 KiB of it (a longer final
/// line is cut at its start).
pub fn tail(path: &std::path::Path, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else { return String::new() };
    let Ok(len) = f.metadata().map(|m| m.len()) else { return String::new() };
    let block = 64 * 1024u64;
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut pos = len;
    let mut newlines = 0usize;
    let mut start_in_first: Option<usize> = None;
    let mut trailing_checked = false;
    while pos > 0 && len - pos < TAIL_MAX_BYTES {
        let step = block.min(pos).min(TAIL_MAX_BYTES - (len - pos));
        pos -= step;
        let mut part = vec![0u8; step as usize];
        if f.seek(SeekFrom::Start(pos)).is_err() || f.read_exact(&mut part).is_err() {
            break;
        }
        // A final newline ends the last line; it does not start a new one.
        let mut scan_end = part.len();
        if !trailing_checked {
            trailing_checked = true;
            if part.last() == Some(&b'\n') {
                scan_end -= 1;
            }
        }
        for (i, b) in part[..scan_end].iter().enumerate().rev() {
            if *b == b'\n' {
                newlines += 1;
                if newlines == lines {
                    start_in_first = Some(i + 1);
                    break;
                }
            }
        }
        blocks.push(part);
        if start_in_first.is_some() {
            break;
        }
    }
    let mut out = Vec::with_capacity(blocks.iter().map(Vec::len).sum());
    for (i, part) in blocks.iter().rev().enumerate() {
        let from = if i == 0 { start_in_first.unwrap_or(0) } else { 0 };
        out.extend_from_slice(&part[from..]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let text: String = (1..=500).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&p, &text).unwrap();
        let t = tail(&p, 200);
        assert!(t.starts_with("line 301\n"), "{}", &t[..20]);
        assert!(t.ends_with("line 500\n"));
        assert_eq!(t.lines().count(), 200);
        assert_eq!(tail(&p, 1000), text);
        std::fs::write(&p, "no newline at the end").unwrap();
        assert_eq!(tail(&p, 200), "no newline at the end");
        std::fs::write(&p, "a\nb").unwrap();
        assert_eq!(tail(&p, 1), "b");
        let big = "y".repeat(3 * 1024 * 1024);
        std::fs::write(&p, format!("{big}\nlast\n")).unwrap();
        let t = tail(&p, 200);
        assert!(t.len() <= 256 * 1024 && t.ends_with("\nlast\n"));
        assert_eq!(tail(&dir.path().join("missing"), 200), "");
    }
}
