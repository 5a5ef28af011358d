//! The SQLite ledger: tokens, projects, jobs, findings.
//!
//! Connections come from a deadpool pool (rusqlite as deadpool-sqlite
//! bundles it, with a connection manager of our own, `ConnectionManager`);
//! every query runs on Tokio's blocking threads through `interact`, never on
//! an async thread. Each
//! connection is set up with WAL, `synchronous=NORMAL`, foreign keys and a
//! busy timeout. Every transaction that writes begins IMMEDIATE, so the write
//! lock is taken up front and a read-then-write never fails half-way with
//! "database is locked".

mod migrations;
mod patches;

pub use patches::{NewPatch, PatchUpdate};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use deadpool::managed::{Metrics, RecycleError, RecycleResult};
use deadpool_sqlite::rusqlite::{
    self, Connection, OptionalExtension, Row, TransactionBehavior, params,
};
use deadpool_sync::SyncWrapper;

use crate::error::{Error, Result};
use crate::model::{
    Finding, FindingRecord, Job, JobFilter, JobStatus, Kind, Notify, Project, RecipeSnapshot,
    Severity, Subproject, Token,
};
use crate::validate::redact_credentials;

/// The current time as RFC 3339 with milliseconds, UTC.
pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

const CONNECTION_SETUP: &str = "PRAGMA journal_mode = WAL;
     PRAGMA synchronous = NORMAL;
     PRAGMA foreign_keys = ON;
     PRAGMA busy_timeout = 10000;";

/// Opens the ledger's connections for the pool.
///
/// deadpool-sqlite's own manager checks every connection before handing it
/// out again by running `SELECT $1` on a blocking thread, so each ledger call
/// crossed threads twice; that round trip cost as much as the small queries
/// the service mostly runs. A connection to a local SQLite file does not go
/// stale, so this manager only refuses one whose lock was poisoned by a panic.
struct ConnectionManager {
    path: PathBuf,
}

impl deadpool::managed::Manager for ConnectionManager {
    type Type = SyncWrapper<Connection>;
    type Error = rusqlite::Error;

    async fn create(&self) -> std::result::Result<Self::Type, Self::Error> {
        let path = self.path.clone();
        SyncWrapper::new(deadpool::Runtime::Tokio1, move || {
            let conn = Connection::open(path)?;
            conn.execute_batch(CONNECTION_SETUP)?;
            Ok(conn)
        })
        .await
    }

    async fn recycle(&self, conn: &mut Self::Type, _: &Metrics) -> RecycleResult<Self::Error> {
        if conn.is_mutex_poisoned() {
            return Err(RecycleError::message("a query panicked while holding the connection"));
        }
        Ok(())
    }
}

type Pool = deadpool::managed::Pool<ConnectionManager>;

/// A handle to the ledger; cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    pool: Arc<PoolOwner>,
}

/// Owns the pool so that its connections are always closed inside a Tokio
/// runtime: deadpool-sync hands each connection's drop to Tokio's blocking
/// pool and panics when there is none, which happens when the last handle
/// goes away while an actix system is tearing its runtime down.
struct PoolOwner(Option<Pool>);

impl std::ops::Deref for PoolOwner {
    type Target = Pool;

    fn deref(&self) -> &Pool {
        self.0.as_ref().expect("present until drop")
    }
}

impl Drop for PoolOwner {
    fn drop(&mut self) {
        let Some(pool) = self.0.take() else { return };
        if tokio::runtime::Handle::try_current().is_ok() {
            return drop(pool);
        }
        let closer = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() {
                rt.block_on(async move { drop(pool) });
                rt.shutdown_timeout(std::time::Duration::from_secs(5));
            }
        });
        let _ = closer.join();
    }
}

/// A project row with the fields only the engine sees.
#[derive(Debug, Clone)]
pub struct ProjectRow {
    /// The row id: stable for the project's lifetime (`user` isolation
    /// derives the project's group id from it).
    pub id: i64,
    /// The record as shown to clients (URL redacted).
    pub project: Project,
    /// The URL with credentials, for fetching.
    pub git_url: String,
}

/// A job row with the fields only the engine sees.
#[derive(Debug, Clone)]
pub struct JobRow {
    /// The record as shown to clients.
    pub job: Job,
    /// Owner of the job's project.
    pub owner: String,
    /// Log file, relative to the logs folder.
    pub log_path: String,
    /// Process group recorded when the recipe started.
    pub pgid: Option<i32>,
    /// Start time (clock ticks since boot) of the group leader, against pid reuse.
    pub pgid_start_ticks: Option<u64>,
}

/// How a job ended, written in one transaction with its findings.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    /// End state.
    pub status: JobStatus,
    /// Exit code, -1 when killed.
    pub exit_code: Option<i32>,
    /// Why, when not plain.
    pub reason: Option<String>,
    /// Bytes in the log.
    pub log_bytes: u64,
    /// Parsed findings with their identities.
    pub findings: Vec<(Finding, String)>,
    /// The commit the job was checked out at, when it got that far and it is
    /// not recorded yet (a job that fails before its recipe starts).
    pub sha: Option<String>,
}

impl JobOutcome {
    /// An end state without findings, its log size read from `log`.
    pub fn unparsed(
        status: JobStatus,
        exit_code: Option<i32>,
        reason: Option<String>,
        log: &Path,
    ) -> Self {
        let log_bytes = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
        JobOutcome { status, exit_code, reason, log_bytes, findings: Vec::new(), sha: None }
    }
}

impl Ledger {
    /// Opens (creating when needed) the ledger file and applies pending migrations.
    pub async fn open(path: &Path, max_connections: usize) -> Result<Ledger> {
        let manager = ConnectionManager { path: path.to_path_buf() };
        let pool = Pool::builder(manager)
            .runtime(deadpool::Runtime::Tokio1)
            .max_size(max_connections.max(2))
            .build()
            .map_err(|e| Error::Pool(e.to_string()))?;
        let ledger = Ledger { pool: Arc::new(PoolOwner(Some(pool))) };
        ledger.write(migrate).await?;
        Ok(ledger)
    }

    /// Runs `f` on a pooled connection.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let conn = self.pool.get().await?;
        conn.interact(move |c| f(c)).await?
    }

    /// Runs `f` inside an IMMEDIATE transaction, committed when `f` returns Ok.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let conn = self.pool.get().await?;
        conn.interact(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await?
    }

    // ----- tokens -------------------------------------------------------------------------

    /// Stores a new token by the sha256 of its bearer.
    pub async fn insert_token(&self, token: Token, secret_sha256: String) -> Result<Token> {
        self.write(move |tx| {
            let taken: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM tokens WHERE name = ?1)",
                [&token.name],
                |r| r.get(0),
            )?;
            if taken {
                return Err(Error::conflict(
                    "token_exists",
                    format!("a token named {:?} already exists; pick another name", token.name),
                ));
            }
            tx.execute(
                "INSERT INTO tokens (name, secret_sha256, is_admin, ip_cidrs, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    token.name,
                    secret_sha256,
                    token.is_admin,
                    serde_json::to_string(&token.ip_cidrs).expect("strings serialise"),
                    token.created_at
                ],
            )?;
            Ok(token)
        })
        .await
    }

    /// All tokens, oldest first.
    pub async fn list_tokens(&self) -> Result<Vec<Token>> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT name, is_admin, ip_cidrs, created_at, revoked_at FROM tokens ORDER BY id",
            )?;
            let rows = st.query_map([], token_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// The live (not revoked) token whose bearer hashes to `secret_sha256`.
    pub async fn token_by_secret(&self, secret_sha256: String) -> Result<Option<Token>> {
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT name, is_admin, ip_cidrs, created_at, revoked_at FROM tokens
                 WHERE secret_sha256 = ?1 AND revoked_at IS NULL",
                [secret_sha256],
                token_from_row,
            )
            .optional()?)
        })
        .await
    }

    /// Marks a token revoked; NotFound when no live token has that name.
    pub async fn revoke_token(&self, name: String) -> Result<()> {
        self.write(move |tx| {
            let admin: Option<bool> = tx
                .query_row(
                    "SELECT is_admin FROM tokens WHERE name = ?1 AND revoked_at IS NULL",
                    [&name],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(is_admin) = admin else { return Err(Error::NotFound { what: "token" }) };
            let admins: i64 = tx.query_row(
                "SELECT COUNT(*) FROM tokens WHERE is_admin = 1 AND revoked_at IS NULL",
                [],
                |r| r.get(0),
            )?;
            if is_admin && admins <= 1 {
                return Err(Error::conflict(
                    "last_admin",
                    format!(
                        "{name:?} is the last live admin token; mint another admin token before \
                         revoking this one"
                    ),
                ));
            }
            tx.execute("UPDATE tokens SET revoked_at = ?2 WHERE name = ?1", params![name, now()])?;
            Ok(())
        })
        .await
    }

    /// Number of tokens ever minted.
    pub async fn token_count(&self) -> Result<u64> {
        self.read(|c| {
            Ok(c.query_row("SELECT COUNT(*) FROM tokens", [], |r| r.get::<_, i64>(0))? as u64)
        })
        .await
    }

    // ----- projects -----------------------------------------------------------------------

    /// Stores a new project.
    pub async fn insert_project(&self, p: Project, raw_url: String) -> Result<()> {
        self.write(move |tx| {
            let taken: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM projects WHERE name = ?1)",
                [&p.name],
                |r| r.get(0),
            )?;
            if taken {
                return Err(Error::conflict(
                    "project_exists",
                    format!("a project named {:?} already exists; pick another name", p.name),
                ));
            }
            tx.execute(
                "INSERT INTO projects (name, owner, git_url, default_branch, languages, subprojects,
                                       notify, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    p.name,
                    p.owner,
                    raw_url,
                    p.default_branch,
                    json(&p.languages),
                    json(&p.subprojects),
                    json(&p.notify),
                    p.created_at,
                    p.updated_at
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Replaces a project's settings (not its name, owner or creation time).
    pub async fn update_project(&self, p: Project, raw_url: String) -> Result<()> {
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE projects SET git_url = ?2, default_branch = ?3, languages = ?4,
                        subprojects = ?5, notify = ?6, updated_at = ?7 WHERE name = ?1",
                params![
                    p.name,
                    raw_url,
                    p.default_branch,
                    json(&p.languages),
                    json(&p.subprojects),
                    json(&p.notify),
                    p.updated_at
                ],
            )?;
            if n == 0 { Err(Error::NotFound { what: "project" }) } else { Ok(()) }
        })
        .await
    }

    /// Records the default branch detected from the remote.
    pub async fn set_default_branch(&self, name: String, branch: String) -> Result<()> {
        self.write(move |tx| {
            tx.execute(
                "UPDATE projects SET default_branch = ?2 WHERE name = ?1 AND default_branch IS NULL",
                params![name, branch],
            )?;
            Ok(())
        })
        .await
    }

    /// One project by name.
    pub async fn get_project(&self, name: String) -> Result<Option<ProjectRow>> {
        self.read(move |c| {
            Ok(c.query_row(
                &format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE name = ?1"),
                [name],
                project_from_row,
            )
            .optional()?)
        })
        .await
    }

    /// Projects, by name; only `owner`'s when given.
    pub async fn list_projects(&self, owner: Option<String>) -> Result<Vec<ProjectRow>> {
        self.read(move |c| {
            let mut st = c.prepare(&format!(
                "SELECT {PROJECT_COLUMNS} FROM projects
                 WHERE ?1 IS NULL OR owner = ?1 ORDER BY name"
            ))?;
            let rows = st.query_map([owner], project_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// Deletes a project with its jobs, findings and patch attempts; returns the
    /// log paths of the deleted jobs so the caller can remove the files.
    pub async fn delete_project(&self, name: String) -> Result<Vec<String>> {
        self.write(move |tx| {
            let mut st = tx.prepare("SELECT log_path FROM jobs WHERE project = ?1")?;
            let logs = st
                .query_map([&name], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let n = tx.execute("DELETE FROM projects WHERE name = ?1", [&name])?;
            if n == 0 {
                return Err(Error::NotFound { what: "project" });
            }
            Ok(logs)
        })
        .await
    }

    // ----- jobs ---------------------------------------------------------------------------

    /// Stores a new queued job.
    pub async fn insert_job(&self, job: Job, log_path: String) -> Result<()> {
        self.write(move |tx| insert_job_in(tx, &job, &log_path)).await
    }

    /// Moves a queued job to running and reads it with its project, in one
    /// transaction; `None` when the job is no longer queued (cancelled
    /// meanwhile) or its project is gone.
    pub async fn claim_job(&self, id: String) -> Result<Option<(JobRow, ProjectRow)>> {
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE jobs SET status = 'running', started_at = ?2
                 WHERE id = ?1 AND status = 'queued'",
                params![id, now()],
            )?;
            if n == 0 {
                return Ok(None);
            }
            let job = tx.query_row(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs JOIN projects p ON p.name = jobs.project
                     WHERE jobs.id = ?1"
                ),
                [&id],
                job_from_row,
            )?;
            let project = tx
                .query_row(
                    &format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE name = ?1"),
                    [&job.job.project],
                    project_from_row,
                )
                .optional()?;
            Ok(project.map(|p| (job, p)))
        })
        .await
    }

    /// Records, once the recipe started, the commit it runs at and its
    /// process group (so a restarted engine can kill what is left of it).
    pub async fn record_run(
        &self,
        id: String,
        sha: String,
        pgid: i32,
        start_ticks: Option<u64>,
    ) -> Result<()> {
        self.write(move |tx| {
            tx.execute(
                "UPDATE jobs SET sha = ?2, pgid = ?3, pgid_start_ticks = ?4 WHERE id = ?1",
                params![id, sha, pgid, start_ticks.map(|t| t as i64)],
            )?;
            Ok(())
        })
        .await
    }

    /// Writes a job's end state and its findings in one transaction, and
    /// returns the job as recorded. A job that already reached an end state
    /// is left alone (returns `None`).
    pub async fn finish_job(&self, id: String, outcome: JobOutcome) -> Result<Option<Job>> {
        self.write(move |tx| {
            let ts = now();
            let n = tx.execute(
                "UPDATE jobs SET status = ?2, exit_code = ?3, reason = ?4, log_bytes = ?5,
                        findings_count = ?6, finished_at = ?7, pgid = NULL, pgid_start_ticks = NULL,
                        sha = COALESCE(?8, sha)
                 WHERE id = ?1 AND status IN ('queued', 'running')",
                params![
                    id,
                    outcome.status.as_str(),
                    outcome.exit_code,
                    outcome.reason,
                    outcome.log_bytes as i64,
                    outcome.findings.len() as i64,
                    ts,
                    outcome.sha
                ],
            )?;
            if n == 0 {
                return Ok(None);
            }
            let mut st = tx.prepare_cached(
                "INSERT INTO findings (job_id, kind, severity, tool, file, line, col, code, message,
                                       suggested_fix, fingerprint, identity, raw_json, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?;
            for (f, identity) in &outcome.findings {
                st.execute(params![
                    id,
                    f.kind.as_str(),
                    f.severity.as_str(),
                    f.tool,
                    f.file,
                    f.line,
                    f.column,
                    f.code,
                    f.message,
                    f.suggested_fix,
                    f.fingerprint,
                    identity,
                    f.raw_json.as_ref().map(|v| v.to_string()),
                    ts
                ])?;
            }
            let job = tx.query_row(
                &format!("SELECT {JOB_RECORD_COLUMNS} FROM jobs WHERE id = ?1"),
                [&id],
                job_record_from_row,
            )?;
            Ok(Some(job))
        })
        .await
    }

    /// One job by id.
    pub async fn get_job(&self, id: String) -> Result<Option<JobRow>> {
        self.read(move |c| {
            Ok(c.query_row(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs JOIN projects p ON p.name = jobs.project
                     WHERE jobs.id = ?1"
                ),
                [id],
                job_from_row,
            )
            .optional()?)
        })
        .await
    }

    /// Jobs newest first, filtered; only `owner`'s projects when given.
    ///
    /// Only the client's view of each job is read: the list is the API's
    /// busiest query, and without the engine-side columns it needs no join
    /// with `projects` unless the owner filter asks for one.
    pub async fn list_jobs(&self, filter: JobFilter, owner: Option<String>) -> Result<Vec<Job>> {
        let limit = clamp_limit(filter.limit);
        self.read(move |c| {
            // Only the filters in use go into the query, so SQLite can pick
            // the (project, id) or (status, id) index instead of scanning.
            let mut w = Where::default();
            w.eq("jobs.project", filter.project);
            w.eq("jobs.status", filter.status.map(|s| s.as_str().to_owned()));
            w.with(owner, |n| {
                format!("jobs.project IN (SELECT name FROM projects WHERE owner = ?{n})")
            });
            let mut st = c.prepare_cached(&format!(
                "SELECT {JOB_RECORD_COLUMNS} FROM jobs {} ORDER BY jobs.id DESC LIMIT {limit}",
                w.sql()
            ))?;
            let rows =
                st.query_map(rusqlite::params_from_iter(w.args.iter()), job_record_from_row)?;
            // Sized up front: growing a list of fifty jobs by doubling copied it five times.
            let mut jobs = Vec::with_capacity(limit as usize);
            for row in rows {
                jobs.push(row?);
            }
            Ok(jobs)
        })
        .await
    }

    /// Jobs in a given state, oldest first (for the restart sweep and the queue).
    pub async fn jobs_in_state(&self, status: JobStatus) -> Result<Vec<JobRow>> {
        self.read(move |c| {
            let mut st = c.prepare(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs JOIN projects p ON p.name = jobs.project
                 WHERE jobs.status = ?1 ORDER BY jobs.id"
            ))?;
            let rows = st.query_map([status.as_str()], job_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// The newest finished job of the same project, subproject and recipe
    /// that is older than `job`.
    pub async fn previous_job(&self, job: Job) -> Result<Option<String>> {
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT id FROM jobs WHERE project = ?1 AND subproject = ?2 AND recipe = ?3
                   AND id < ?4 AND status IN ('succeeded', 'failed', 'timed_out')
                 ORDER BY id DESC LIMIT 1",
                params![job.project, job.subproject, job.recipe, job.id],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    // ----- findings -----------------------------------------------------------------------

    /// A job's findings in the order they were found.
    pub async fn findings(&self, job_id: String) -> Result<Vec<FindingRecord>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT id, job_id, kind, severity, tool, file, line, col, code, message,
                        suggested_fix, fingerprint, identity, raw_json, created_at
                 FROM findings WHERE job_id = ?1 ORDER BY id",
            )?;
            let rows = st.query_map([job_id], finding_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// Runs `PRAGMA integrity_check` and returns its first line (`ok` when sound).
    pub async fn integrity_check(&self) -> Result<String> {
        self.read(|c| Ok(c.query_row("PRAGMA integrity_check", [], |r| r.get(0))?)).await
    }

    // ----- digest -------------------------------------------------------------------------
    // Queries of the daily digest (crate::digest). Times are RFC 3339 UTC strings
    // in the format of `now()`, so they compare as text.

    /// A project's jobs that reached an end state in `[start, end)`, in the
    /// order they ended.
    pub async fn jobs_finished_between(
        &self,
        project: String,
        start: String,
        end: String,
    ) -> Result<Vec<JobRow>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs JOIN projects p ON p.name = jobs.project
                 WHERE jobs.project = ?1 AND jobs.finished_at >= ?2 AND jobs.finished_at < ?3
                   AND jobs.status IN ('succeeded', 'failed', 'timed_out', 'cancelled')
                 ORDER BY jobs.finished_at, jobs.id"
            ))?;
            let rows = st.query_map(params![project, start, end], job_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// The newest job of a project, subproject and recipe that ended
    /// (succeeded, failed or timed out) before `before`.
    pub async fn latest_finished_before(
        &self,
        project: String,
        subproject: String,
        recipe: String,
        before: String,
    ) -> Result<Option<String>> {
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT id FROM jobs WHERE project = ?1 AND subproject = ?2 AND recipe = ?3
                   AND status IN ('succeeded', 'failed', 'timed_out') AND finished_at < ?4
                 ORDER BY finished_at DESC, id DESC LIMIT 1",
                params![project, subproject, recipe, before],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    /// Patch attempts on a project's jobs created in `[start, end)` whose
    /// status is `drafted` or `pr_opened`, oldest first.
    pub async fn drafted_patches_between(
        &self,
        project: String,
        start: String,
        end: String,
    ) -> Result<Vec<DraftedPatch>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT pa.id, pa.job_id, pa.finding_id, pa.attempt_number, pa.status, pa.branch,
                        pa.pr_url, pa.confidence, pa.created_at, j.subproject, j.recipe,
                        f.kind, f.code, f.file, f.line
                 FROM patch_attempts pa
                 JOIN jobs j ON j.id = pa.job_id
                 LEFT JOIN findings f ON f.id = pa.finding_id
                 WHERE j.project = ?1 AND pa.created_at >= ?2 AND pa.created_at < ?3
                   AND pa.status IN ('drafted', 'pr_opened')
                 ORDER BY pa.created_at, pa.id",
            )?;
            let rows = st.query_map(params![project, start, end], |r| {
                Ok(DraftedPatch {
                    id: r.get(0)?,
                    job_id: r.get(1)?,
                    finding_id: r.get(2)?,
                    attempt_number: r.get(3)?,
                    status: r.get(4)?,
                    branch: r.get(5)?,
                    pr_url: r.get(6)?,
                    confidence: r.get(7)?,
                    created_at: r.get(8)?,
                    subproject: r.get(9)?,
                    recipe: r.get(10)?,
                    finding_kind: r.get(11)?,
                    finding_code: r.get(12)?,
                    finding_file: r.get(13)?,
                    finding_line: r.get(14)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// The digest record of a date (`YYYY-MM-DD`) and project, if any.
    pub async fn digest_run(&self, date: String, project: String) -> Result<Option<DigestRun>> {
        self.read(move |c| {
            Ok(c.query_row(
                &format!(
                    "SELECT {DIGEST_RUN_COLUMNS} FROM digest_runs
                     WHERE date = ?1 AND project_name = ?2"
                ),
                params![date, project],
                digest_run_from_row,
            )
            .optional()?)
        })
        .await
    }

    /// The project's newest digest sent for a date before `date`.
    pub async fn previous_sent_digest(
        &self,
        project: String,
        date: String,
    ) -> Result<Option<DigestRun>> {
        self.read(move |c| {
            Ok(c.query_row(
                &format!(
                    "SELECT {DIGEST_RUN_COLUMNS} FROM digest_runs
                     WHERE project_name = ?1 AND date < ?2 AND status = 'sent'
                     ORDER BY date DESC LIMIT 1"
                ),
                params![project, date],
                digest_run_from_row,
            )
            .optional()?)
        })
        .await
    }

    /// Decides, in one IMMEDIATE transaction, whether this caller sends the
    /// digest of `claim.date` for `claim.project`: a missing or `failed` row,
    /// or a `sending` row claimed before `claim.stale_before`, becomes
    /// `sending` under this claim; a `sent` row or a fresh `sending` one is
    /// left alone.
    pub async fn claim_digest(&self, claim: NewDigestClaim) -> Result<DigestClaim> {
        self.write(move |tx| {
            let current: Option<(String, Option<String>, Option<String>)> = tx
                .query_row(
                    "SELECT status, claimed_at, sent_at FROM digest_runs
                     WHERE date = ?1 AND project_name = ?2",
                    params![claim.date, claim.project],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            match current {
                Some((status, _, sent_at)) if status == "sent" => {
                    return Ok(DigestClaim::AlreadySent { sent_at });
                }
                Some((status, Some(at), _)) if status == "sending" && at > claim.stale_before => {
                    return Ok(DigestClaim::InProgress { claimed_at: at });
                }
                _ => {}
            }
            let ts = now();
            tx.execute(
                "INSERT INTO digest_runs (date, project_name, recipients, status, claimed_at,
                                          attempts, window_start, window_end, subject, dry_run)
                 VALUES (?1, ?2, ?3, 'sending', ?4, 1, ?5, ?6, ?7, 0)
                 ON CONFLICT (date, project_name) DO UPDATE SET
                     recipients = excluded.recipients, status = 'sending', error = NULL,
                     claimed_at = excluded.claimed_at, attempts = digest_runs.attempts + 1,
                     window_start = excluded.window_start, window_end = excluded.window_end,
                     subject = excluded.subject",
                params![
                    claim.date,
                    claim.project,
                    json(&claim.recipients),
                    ts,
                    claim.window_start,
                    claim.window_end,
                    claim.subject
                ],
            )?;
            let attempt: i64 = tx.query_row(
                "SELECT attempts FROM digest_runs WHERE date = ?1 AND project_name = ?2",
                params![claim.date, claim.project],
                |r| r.get(0),
            )?;
            Ok(DigestClaim::Claimed { attempt: attempt as u32, claimed_at: ts })
        })
        .await
    }

    /// Ends a claim made by [`Ledger::claim_digest`]: `sent`, or `failed`
    /// with the error. Only the claim taken at `claimed_at` is ended, so a
    /// sender whose stale claim was taken over cannot overwrite the new one.
    pub async fn finish_digest(
        &self,
        date: String,
        project: String,
        claimed_at: String,
        outcome: std::result::Result<(), String>,
    ) -> Result<()> {
        self.write(move |tx| {
            match outcome {
                Ok(()) => tx.execute(
                    "UPDATE digest_runs SET status = 'sent', sent_at = ?4, error = NULL
                     WHERE date = ?1 AND project_name = ?2 AND claimed_at = ?3",
                    params![date, project, claimed_at, now()],
                )?,
                Err(e) => tx.execute(
                    "UPDATE digest_runs SET status = 'failed', error = ?4
                     WHERE date = ?1 AND project_name = ?2 AND claimed_at = ?3",
                    params![date, project, claimed_at, e],
                )?,
            };
            Ok(())
        })
        .await
    }
}

/// A patch attempt as the digest lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DraftedPatch {
    /// Ledger id.
    pub id: i64,
    /// The job whose finding it fixes.
    pub job_id: String,
    /// The finding it fixes.
    pub finding_id: i64,
    /// 1 for the first attempt on that finding.
    pub attempt_number: i64,
    /// `drafted` or `pr_opened`.
    pub status: String,
    /// The branch it was pushed to, once pushed.
    pub branch: Option<String>,
    /// The pull request, once opened.
    pub pr_url: Option<String>,
    /// The agent's confidence, 0 to 1.
    pub confidence: Option<f64>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// Subproject of the job.
    pub subproject: String,
    /// Recipe of the job.
    pub recipe: String,
    /// Kind of the finding, when it still exists.
    pub finding_kind: Option<String>,
    /// Code of the finding.
    pub finding_code: Option<String>,
    /// File of the finding.
    pub finding_file: Option<String>,
    /// Line of the finding.
    pub finding_line: Option<u32>,
}

/// A row of `digest_runs`: one project's digest of one date.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DigestRun {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// The project.
    pub project: String,
    /// Where it went (or goes).
    pub recipients: Vec<String>,
    /// `sending`, `sent` or `failed`.
    pub status: String,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// When the relay accepted it.
    pub sent_at: Option<String>,
    /// When the last attempt started.
    pub claimed_at: Option<String>,
    /// Attempts so far.
    pub attempts: u32,
    /// The window it covered, start included.
    pub window_start: Option<String>,
    /// The window it covered, end excluded.
    pub window_end: Option<String>,
    /// Its subject line.
    pub subject: Option<String>,
}

/// What [`Ledger::claim_digest`] is asked to record.
#[derive(Debug, Clone)]
pub struct NewDigestClaim {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// The project.
    pub project: String,
    /// Recipients.
    pub recipients: Vec<String>,
    /// Window start.
    pub window_start: String,
    /// Window end.
    pub window_end: String,
    /// Subject line.
    pub subject: String,
    /// A `sending` claim made before this time is taken over.
    pub stale_before: String,
}

/// The answer of [`Ledger::claim_digest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestClaim {
    /// This caller sends; `attempt` counts from 1.
    Claimed {
        /// Attempt number.
        attempt: u32,
        /// The claim's time, to hand back to [`Ledger::finish_digest`].
        claimed_at: String,
    },
    /// Sent already; nothing to do.
    AlreadySent {
        /// When.
        sent_at: Option<String>,
    },
    /// Another run is sending it right now.
    InProgress {
        /// When that run claimed it.
        claimed_at: String,
    },
}

const DIGEST_RUN_COLUMNS: &str = "date, project_name, recipients, status, error, sent_at, \
                                  claimed_at, attempts, window_start, window_end, subject";

fn digest_run_from_row(r: &Row<'_>) -> rusqlite::Result<DigestRun> {
    Ok(DigestRun {
        date: r.get(0)?,
        project: r.get(1)?,
        recipients: parse_json(r, 2)?,
        status: r.get(3)?,
        error: r.get(4)?,
        sent_at: r.get(5)?,
        claimed_at: r.get(6)?,
        attempts: r.get::<_, i64>(7)? as u32,
        window_start: r.get(8)?,
        window_end: r.get(9)?,
        subject: r.get(10)?,
    })
}

/// Stores a queued job inside the caller's transaction.
fn insert_job_in(tx: &rusqlite::Transaction<'_>, job: &Job, log_path: &str) -> Result<()> {
    let exists: bool = tx.query_row(
        "SELECT EXISTS(SELECT 1 FROM projects WHERE name = ?1)",
        [&job.project],
        |r| r.get(0),
    )?;
    if !exists {
        return Err(Error::NotFound { what: "project" });
    }
    tx.execute(
        "INSERT INTO jobs (id, project, subproject, recipe, git_ref, status,
                           recipe_snapshot_json, log_path, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            job.id,
            job.project,
            job.subproject,
            job.recipe,
            job.git_ref,
            job.status.as_str(),
            json(&job.recipe_snapshot),
            log_path,
            job.created_at
        ],
    )?;
    Ok(())
}

/// The `WHERE` clause of a list query, built from the filters in use only,
/// so that SQLite can pick the index that fits them.
#[derive(Default)]
struct Where {
    clauses: Vec<String>,
    args: Vec<String>,
}

impl Where {
    /// Adds `column = value` when a value is given.
    fn eq(&mut self, column: &str, value: Option<String>) {
        self.with(value, |n| format!("{column} = ?{n}"));
    }

    /// Adds the clause `clause(n)`, whose `?n` is `value`, when a value is given.
    fn with(&mut self, value: Option<String>, clause: impl FnOnce(usize) -> String) {
        if let Some(v) = value {
            self.args.push(v);
            self.clauses.push(clause(self.args.len()));
        }
    }

    /// `WHERE ...`, or nothing without filters.
    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }
}

/// Clamps a list limit to 1..=500, 50 by default.
pub fn clamp_limit(limit: Option<u32>) -> i64 {
    limit.unwrap_or(50).clamp(1, 500) as i64
}

fn migrate(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    let version = tx.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if version > migrations::MIGRATIONS.len() {
        return Err(Error::Pool(format!(
            "the ledger is at schema version {version}, newer than this build knows ({}); \
             run a newer crafting-table",
            migrations::MIGRATIONS.len()
        )));
    }
    for (i, sql) in migrations::MIGRATIONS.iter().enumerate().skip(version) {
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
    }
    Ok(())
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("in-memory records serialise")
}

/// Parses the JSON text in column `idx`, read in place rather than copied out.
fn parse_json<T: serde::de::DeserializeOwned>(r: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    serde_json::from_str(r.get_ref(idx)?.as_str()?).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn token_from_row(r: &Row<'_>) -> rusqlite::Result<Token> {
    Ok(Token {
        name: r.get(0)?,
        is_admin: r.get(1)?,
        ip_cidrs: parse_json(r, 2)?,
        created_at: r.get(3)?,
        revoked_at: r.get(4)?,
    })
}

const PROJECT_COLUMNS: &str = "name, owner, git_url, default_branch, languages, subprojects, \
                               notify, created_at, updated_at, id";

fn project_from_row(r: &Row<'_>) -> rusqlite::Result<ProjectRow> {
    let git_url: String = r.get(2)?;
    let subprojects: Vec<Subproject> = parse_json(r, 5)?;
    let notify: Notify = parse_json(r, 6)?;
    Ok(ProjectRow {
        id: r.get(9)?,
        project: Project {
            name: r.get(0)?,
            owner: r.get(1)?,
            git_url: redact_credentials(&git_url),
            default_branch: r.get(3)?,
            languages: parse_json(r, 4)?,
            subprojects,
            notify,
            created_at: r.get(7)?,
            updated_at: r.get(8)?,
        },
        git_url,
    })
}

/// The columns of a job as clients see it, in the order [`job_record_from_row`]
/// reads them (a macro, so that [`JOB_COLUMNS`] can extend it with `concat!`).
macro_rules! job_record_columns {
    () => {
        "jobs.id, jobs.project, jobs.subproject, jobs.recipe, jobs.git_ref, jobs.sha, \
         jobs.status, jobs.exit_code, jobs.reason, jobs.recipe_snapshot_json, jobs.log_bytes, \
         jobs.findings_count, jobs.created_at, jobs.started_at, jobs.finished_at"
    };
}

const JOB_RECORD_COLUMNS: &str = job_record_columns!();

/// The record columns, then the engine's own: log path, process group, owner.
const JOB_COLUMNS: &str =
    concat!(job_record_columns!(), ", jobs.log_path, jobs.pgid, jobs.pgid_start_ticks, p.owner");

fn job_record_from_row(r: &Row<'_>) -> rusqlite::Result<Job> {
    let status = r.get_ref(6)?.as_str()?;
    let status = JobStatus::parse(status).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            6,
            rusqlite::types::Type::Text,
            format!("unknown job status {status:?}").into(),
        )
    })?;
    let snapshot: RecipeSnapshot = parse_json(r, 9)?;
    Ok(Job {
        id: r.get(0)?,
        project: r.get(1)?,
        subproject: r.get(2)?,
        recipe: r.get(3)?,
        git_ref: r.get(4)?,
        sha: r.get(5)?,
        status,
        exit_code: r.get(7)?,
        reason: r.get(8)?,
        recipe_snapshot: snapshot,
        log_bytes: r.get::<_, i64>(10)? as u64,
        findings_count: r.get::<_, i64>(11)? as u64,
        created_at: r.get(12)?,
        started_at: r.get(13)?,
        finished_at: r.get(14)?,
    })
}

fn job_from_row(r: &Row<'_>) -> rusqlite::Result<JobRow> {
    Ok(JobRow {
        job: job_record_from_row(r)?,
        log_path: r.get(15)?,
        pgid: r.get(16)?,
        pgid_start_ticks: r.get::<_, Option<i64>>(17)?.map(|t| t as u64),
        owner: r.get(18)?,
    })
}

fn finding_from_row(r: &Row<'_>) -> rusqlite::Result<FindingRecord> {
    let kind: String = r.get(2)?;
    let severity: String = r.get(3)?;
    let raw: Option<String> = r.get(13)?;
    Ok(FindingRecord {
        id: r.get(0)?,
        job_id: r.get(1)?,
        finding: Finding {
            kind: Kind::parse(&kind).unwrap_or(Kind::RecipeFail),
            severity: Severity::parse(&severity).unwrap_or(Severity::Error),
            tool: r.get(4)?,
            file: r.get(5)?,
            line: r.get(6)?,
            column: r.get(7)?,
            code: r.get(8)?,
            message: r.get(9)?,
            suggested_fix: r.get(10)?,
            fingerprint: r.get(11)?,
            raw_json: raw.and_then(|s| serde_json::from_str(&s).ok()),
        },
        identity: r.get(12)?,
        created_at: r.get(14)?,
    })
}
