//! Patch attempts: one row per attempt at fixing one finding.
//!
//! Attempts are counted per finding *identity* within a project's
//! subproject and recipe, not per finding row: every nightly job stores new
//! finding rows for the same lint, and counting those separately would draft
//! the same fix again every night. An identity that has a pull request open,
//! an attempt in progress, or the maximum number of attempts gets no more.
//! Attempts that ended `error` (the agent, the forge or the engine failed,
//! not the fix) do not count towards the maximum; automatic attempts leave
//! an identity alone after one, until a person asks again.

use std::collections::HashSet;

use deadpool_sqlite::rusqlite::{self, OptionalExtension, Row, params};

use super::{Ledger, Where, clamp_limit, insert_job_in, now};
use crate::error::{Error, Result};
use crate::model::{Job, Kind, PatchAttempt, PatchFilter, PatchStage, PatchStatus, PatchTarget};

/// A request for a new attempt.
#[derive(Debug, Clone)]
pub struct NewPatch {
    /// The job whose finding is to be fixed.
    pub job_id: String,
    /// The finding; it must belong to the job.
    pub finding_id: i64,
    /// Most attempts per finding identity (`CRAFTING_PATCHER_MAX_ATTEMPTS`).
    pub max_attempts: u32,
}

/// Fields of an attempt to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct PatchUpdate {
    /// New state.
    pub status: Option<PatchStatus>,
    /// New stage.
    pub stage: Option<PatchStage>,
    /// `tool:<name>` or `agent:<kind>`.
    pub source: Option<String>,
    /// The branch committed to.
    pub branch: Option<String>,
    /// The diff.
    pub diff: Option<String>,
    /// The explanation.
    pub explanation: Option<String>,
    /// The confidence.
    pub confidence: Option<f64>,
    /// The pull request's address.
    pub pr_url: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

impl PatchUpdate {
    /// An end state with its reason; the stage becomes `done`.
    pub fn ended(status: PatchStatus, error: Option<String>) -> PatchUpdate {
        PatchUpdate {
            status: Some(status),
            stage: Some(PatchStage::Done),
            error,
            ..Default::default()
        }
    }

    /// Only a new stage.
    pub fn stage(stage: PatchStage) -> PatchUpdate {
        PatchUpdate { stage: Some(stage), ..Default::default() }
    }
}

const PATCH_SELECT: &str = "SELECT pa.id, pa.job_id, j.project, pa.finding_id, pa.attempt_number,
        pa.status, pa.stage, pa.source, pa.branch, pa.diff, pa.explanation, pa.confidence,
        pa.verify_job_id, pa.pr_url, pa.error, pa.created_at, pa.updated_at,
        f.kind, f.tool, f.code, f.file, f.line, f.message, f.identity, p.owner
     FROM patch_attempts pa
     JOIN jobs j ON j.id = pa.job_id
     JOIN projects p ON p.name = j.project
     LEFT JOIN findings f ON f.id = pa.finding_id";

/// What the attempts on one identity allow.
#[derive(Default)]
struct History {
    /// Attempts that count towards the maximum (all but `error` ones).
    counted: u32,
    /// Every attempt, for numbering.
    attempts: u32,
    open_pr: Option<String>,
    in_progress: Option<i64>,
    /// The newest attempt ended `error`.
    last_failed_outside: bool,
}

impl History {
    /// Adds the attempt in `r`, whose [`HISTORY_COLUMNS`] start at `at`
    /// (attempts come oldest first).
    fn add(&mut self, r: &Row<'_>, at: usize) -> rusqlite::Result<()> {
        let id: i64 = r.get(at)?;
        let status: String = r.get(at + 1)?;
        let stage: String = r.get(at + 2)?;
        let pr_url: Option<String> = r.get(at + 3)?;
        self.attempts += 1;
        let error = status == PatchStatus::Error.as_str();
        if !error {
            self.counted += 1;
        }
        self.last_failed_outside = error;
        if stage != PatchStage::Done.as_str() {
            self.in_progress = Some(id);
        }
        if status == PatchStatus::PrOpened.as_str() {
            self.open_pr = Some(pr_url.unwrap_or_default());
        }
        Ok(())
    }
}

impl Ledger {
    /// Reserves the next attempt number for the finding's identity and stores
    /// the attempt as `drafted`/`queued`. Refused (409) while another attempt
    /// on the identity is in progress, once one opened a pull request, and
    /// after `max_attempts`.
    pub async fn insert_patch(&self, req: NewPatch) -> Result<PatchAttempt> {
        let id = self
            .write(move |tx| {
                let target: Option<(String, String, String, String)> = tx
                    .query_row(
                        "SELECT f.identity, j.project, j.subproject, j.recipe
                         FROM findings f JOIN jobs j ON j.id = f.job_id
                         WHERE f.id = ?1 AND f.job_id = ?2",
                        params![req.finding_id, req.job_id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )
                    .optional()?;
                let (identity, project, subproject, recipe) =
                    target.ok_or(Error::NotFound { what: "finding" })?;
                let h = history(tx, &project, &subproject, &recipe, &identity)?;
                if let Some(other) = h.in_progress {
                    return Err(Error::conflict(
                        "patch_in_progress",
                        format!(
                            "attempt {other} on this finding is still in progress; wait for it \
                             (GET /patches/{other})"
                        ),
                    ));
                }
                if let Some(url) = h.open_pr {
                    return Err(Error::conflict(
                        "patch_exists",
                        format!(
                            "a pull request for this finding is already open ({url}); review it \
                             there"
                        ),
                    ));
                }
                if h.counted >= req.max_attempts {
                    return Err(Error::conflict(
                        "attempts_exhausted",
                        format!(
                            "this finding has had {} patch attempts, the most allowed \
                             (CRAFTING_PATCHER_MAX_ATTEMPTS={}); fix it by hand",
                            h.counted, req.max_attempts
                        ),
                    ));
                }
                let at = now();
                tx.execute(
                    "INSERT INTO patch_attempts (job_id, finding_id, attempt_number, status, stage,
                                                 created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                    params![
                        req.job_id,
                        req.finding_id,
                        h.attempts + 1,
                        PatchStatus::Drafted.as_str(),
                        PatchStage::Queued.as_str(),
                        at
                    ],
                )?;
                Ok(tx.last_insert_rowid())
            })
            .await?;
        self.get_patch(id).await?.map(|(p, _)| p).ok_or(Error::NotFound { what: "patch attempt" })
    }

    /// Changes the given fields of attempt `id` of job `job_id` (both must
    /// match: an attempt whose project was deleted meanwhile changes nothing).
    pub async fn update_patch(&self, id: i64, job_id: String, u: PatchUpdate) -> Result<()> {
        self.write(move |tx| {
            tx.execute(
                "UPDATE patch_attempts SET
                    status = COALESCE(?2, status), stage = COALESCE(?3, stage),
                    source = COALESCE(?4, source), branch = COALESCE(?5, branch),
                    diff = COALESCE(?6, diff), explanation = COALESCE(?7, explanation),
                    confidence = COALESCE(?8, confidence), pr_url = COALESCE(?9, pr_url),
                    error = COALESCE(?10, error), updated_at = ?11
                 WHERE id = ?1 AND job_id = ?12",
                params![
                    id,
                    u.status.map(PatchStatus::as_str),
                    u.stage.map(PatchStage::as_str),
                    u.source,
                    u.branch,
                    u.diff,
                    u.explanation,
                    u.confidence,
                    u.pr_url,
                    u.error,
                    now(),
                    job_id
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Stores the verify job as queued and links it to the attempt, in one
    /// transaction: whoever sees the job finish can tell it is a verify job.
    pub async fn queue_verify_job(&self, patch_id: i64, job: Job, log_path: String) -> Result<()> {
        self.write(move |tx| {
            insert_job_in(tx, &job, &log_path)?;
            tx.execute(
                "UPDATE patch_attempts SET verify_job_id = ?2, stage = ?3, updated_at = ?4
                 WHERE id = ?1",
                params![patch_id, job.id, PatchStage::Verifying.as_str(), now()],
            )?;
            Ok(())
        })
        .await
    }

    /// An attempt with the name of its project's owner.
    pub async fn get_patch(&self, id: i64) -> Result<Option<(PatchAttempt, String)>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!("{PATCH_SELECT} WHERE pa.id = ?1"))?;
            Ok(st.query_row([id], patch_from_row).optional()?)
        })
        .await
    }

    /// Attempts newest first: the owner's (every attempt without one), filtered.
    pub async fn list_patches(
        &self,
        filter: PatchFilter,
        owner: Option<String>,
    ) -> Result<Vec<PatchAttempt>> {
        let limit = clamp_limit(filter.limit);
        self.read(move |c| {
            let mut w = Where::default();
            w.eq("j.project", filter.project);
            w.eq("pa.status", filter.status.map(|s| s.as_str().to_owned()));
            w.eq("p.owner", owner);
            let mut st = c.prepare_cached(&format!(
                "{PATCH_SELECT} {} ORDER BY pa.id DESC LIMIT {limit}",
                w.sql()
            ))?;
            let rows = st.query_map(rusqlite::params_from_iter(w.args.iter()), patch_from_row)?;
            Ok(rows.map(|r| r.map(|(p, _)| p)).collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// The attempt a job verifies, when it is a verify job.
    pub async fn patch_of_verify_job(&self, job_id: String) -> Result<Option<i64>> {
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT id FROM patch_attempts WHERE verify_job_id = ?1",
                [job_id],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    /// Earlier attempts on the same identity in the same project, subproject
    /// and recipe, oldest first.
    pub async fn patches_of_identity(
        &self,
        job: Job,
        identity: String,
    ) -> Result<Vec<PatchAttempt>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "{PATCH_SELECT} WHERE j.project = ?1 AND j.subproject = ?2 AND j.recipe = ?3
                   AND f.identity = ?4 ORDER BY pa.id"
            ))?;
            let rows = st.query_map(
                params![job.project, job.subproject, job.recipe, identity],
                patch_from_row,
            )?;
            Ok(rows.map(|r| r.map(|(p, _)| p)).collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// Identities of the job's recipe lineage that get no automatic attempt:
    /// one in progress, one with a pull request, `max_attempts` made, or
    /// the last attempt ended `error`.
    pub async fn blocked_identities(&self, job: Job, max_attempts: u32) -> Result<HashSet<String>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT f.identity, {HISTORY_COLUMNS} {HISTORY_FROM}
                 WHERE j.project = ?1 AND j.subproject = ?2 AND j.recipe = ?3
                 ORDER BY f.identity, pa.id"
            ))?;
            let mut rows = st.query(params![job.project, job.subproject, job.recipe])?;
            let mut all: Vec<(String, History)> = Vec::new();
            while let Some(r) = rows.next()? {
                let identity: String = r.get(0)?;
                if all.last().is_none_or(|(i, _)| *i != identity) {
                    all.push((identity, History::default()));
                }
                if let Some((_, h)) = all.last_mut() {
                    h.add(r, 1)?;
                }
            }
            Ok(all
                .into_iter()
                .filter(|(_, h)| {
                    h.in_progress.is_some()
                        || h.open_pr.is_some()
                        || h.counted >= max_attempts
                        || h.last_failed_outside
                })
                .map(|(i, _)| i)
                .collect())
        })
        .await
    }

    /// Attempts not at their end, oldest first (for the start-up sweep).
    pub async fn unfinished_patches(&self) -> Result<Vec<PatchAttempt>> {
        self.read(|c| {
            let mut st =
                c.prepare(&format!("{PATCH_SELECT} WHERE pa.stage != 'done' ORDER BY pa.id"))?;
            let rows = st.query_map([], patch_from_row)?;
            Ok(rows.map(|r| r.map(|(p, _)| p)).collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}

const HISTORY_COLUMNS: &str = "pa.id, pa.status, pa.stage, pa.pr_url";
const HISTORY_FROM: &str = "FROM patch_attempts pa
     JOIN jobs j ON j.id = pa.job_id
     JOIN findings f ON f.id = pa.finding_id";

/// The attempts so far on an identity.
fn history(
    tx: &rusqlite::Transaction<'_>,
    project: &str,
    subproject: &str,
    recipe: &str,
    identity: &str,
) -> Result<History> {
    let mut st = tx.prepare_cached(&format!(
        "SELECT {HISTORY_COLUMNS} {HISTORY_FROM}
         WHERE j.project = ?1 AND j.subproject = ?2 AND j.recipe = ?3 AND f.identity = ?4
         ORDER BY pa.id"
    ))?;
    let mut rows = st.query(params![project, subproject, recipe, identity])?;
    let mut h = History::default();
    while let Some(r) = rows.next()? {
        h.add(r, 0)?;
    }
    Ok(h)
}

fn patch_from_row(r: &Row<'_>) -> rusqlite::Result<(PatchAttempt, String)> {
    let status: String = r.get(5)?;
    let stage: String = r.get(6)?;
    let kind: Option<String> = r.get(17)?;
    let finding = match kind.as_deref().and_then(Kind::parse) {
        Some(kind) => Some(PatchTarget {
            kind,
            tool: r.get(18)?,
            code: r.get(19)?,
            file: r.get(20)?,
            line: r.get(21)?,
            message: r.get(22)?,
            identity: r.get(23)?,
        }),
        None => None,
    };
    Ok((
        PatchAttempt {
            id: r.get(0)?,
            job_id: r.get(1)?,
            project: r.get(2)?,
            finding_id: r.get(3)?,
            finding,
            attempt_number: r.get(4)?,
            status: PatchStatus::parse(&status).unwrap_or(PatchStatus::Error),
            stage: PatchStage::parse(&stage).unwrap_or(PatchStage::Done),
            source: r.get(7)?,
            branch: r.get(8)?,
            diff: r.get(9)?,
            explanation: r.get(10)?,
            confidence: r.get(11)?,
            verify_job_id: r.get(12)?,
            pr_url: r.get(13)?,
            error: r.get(14)?,
            created_at: r.get(15)?,
            updated_at: r.get(16)?,
        },
        r.get(24)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNAPSHOT: &str = r#"{"recipe":"lint","command":"true","subproject":".","language":"python","timeout_secs":1}"#;

    /// Seeds project `p` with job `j` holding one finding of identity `ident`;
    /// returns the finding's id.
    async fn seed(ledger: &Ledger, p: &str, j: &str, ident: &str) -> i64 {
        let (p, j, ident) = (p.to_owned(), j.to_owned(), ident.to_owned());
        ledger
            .write(move |tx| {
                tx.execute(
                    "INSERT OR IGNORE INTO projects (name, owner, git_url, languages, subprojects,
                                                     notify, created_at, updated_at)
                     VALUES (?1, 'o', '/x', '[]', '[]', '{}', 't', 't')",
                    [&p],
                )?;
                tx.execute(
                    "INSERT INTO jobs (id, project, subproject, recipe, status,
                                       recipe_snapshot_json, log_path, created_at)
                     VALUES (?1, ?2, '.', 'lint', 'failed', ?3, 'l', 't')",
                    [&j, &p, &SNAPSHOT.to_owned()],
                )?;
                tx.execute(
                    "INSERT INTO findings (job_id, kind, severity, tool, code, message,
                                           fingerprint, identity, created_at)
                     VALUES (?1, 'lint', 'warn', 'ruff', 'F401', 'm', 'f', ?2, 't')",
                    [&j, &ident],
                )?;
                Ok(tx.last_insert_rowid())
            })
            .await
            .unwrap()
    }

    fn new(job: &str, finding: i64) -> NewPatch {
        NewPatch { job_id: job.to_owned(), finding_id: finding, max_attempts: 2 }
    }

    #[tokio::test]
    async fn attempt_ids_are_never_reused_after_a_project_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.sqlite3"), 2).await.unwrap();
        let f = seed(&ledger, "gone", "j1", "i").await;
        let first = ledger.insert_patch(new("j1", f)).await.unwrap();
        ledger.delete_project("gone".into()).await.unwrap();
        let f = seed(&ledger, "kept", "j2", "i").await;
        let second = ledger.insert_patch(new("j2", f)).await.unwrap();
        assert!(second.id > first.id, "{} then {}", first.id, second.id);
        // A late update of the deleted project's attempt touches nothing.
        let stale = PatchUpdate::ended(PatchStatus::Error, Some("late".into()));
        ledger.update_patch(first.id, "j1".into(), stale).await.unwrap();
        let (now, _) = ledger.get_patch(second.id).await.unwrap().unwrap();
        assert_eq!((now.status, now.stage), (PatchStatus::Drafted, PatchStage::Queued));
    }

    #[tokio::test]
    async fn only_attempts_on_the_fix_count_towards_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.sqlite3"), 2).await.unwrap();
        let f = seed(&ledger, "p", "j1", "same").await;
        let end = |status| PatchUpdate::ended(status, Some("why".into()));
        let a = ledger.insert_patch(new("j1", f)).await.unwrap();
        // One in progress at a time.
        let busy = ledger.insert_patch(new("j1", f)).await.unwrap_err();
        assert_eq!(busy.code(), "patch_in_progress");
        ledger.update_patch(a.id, "j1".into(), end(PatchStatus::Error)).await.unwrap();
        let job = ledger.get_job("j1".into()).await.unwrap().unwrap().job;
        // The forge failed: not counted, but no automatic retry either.
        let blocked = ledger.blocked_identities(job.clone(), 2).await.unwrap();
        assert!(blocked.contains("same"));
        let b = ledger.insert_patch(new("j1", f)).await.unwrap();
        assert_eq!(b.attempt_number, 2);
        ledger.update_patch(b.id, "j1".into(), end(PatchStatus::VerifyFailed)).await.unwrap();
        assert!(ledger.blocked_identities(job.clone(), 2).await.unwrap().is_empty());
        // A later job's finding of the same identity shares the count.
        let g = seed(&ledger, "p", "j2", "same").await;
        let c = ledger.insert_patch(new("j2", g)).await.unwrap();
        ledger.update_patch(c.id, "j2".into(), end(PatchStatus::ApplyFailed)).await.unwrap();
        let out = ledger.insert_patch(new("j2", g)).await.unwrap_err();
        assert_eq!(out.code(), "attempts_exhausted");
        assert!(out.to_string().contains("2 patch attempts"), "{out}");
        assert!(ledger.blocked_identities(job, 2).await.unwrap().contains("same"));
    }
}
