//! Patch attempts: one row per attempt at fixing one finding.
//!
//! Attempts are counted per finding *identity* within a project's
//! subproject and recipe, not per finding row: every nightly job stores new
//! finding rows for the same lint, and counting those separately would draft
//! the same fix again every night. An identity that has a pull request open,
//! an attempt in progress, or the maximum number of attempts gets no more.

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
struct History {
    attempts: u32,
    open_pr: Option<String>,
    in_progress: Option<i64>,
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
                if h.attempts >= req.max_attempts {
                    return Err(Error::conflict(
                        "attempts_exhausted",
                        format!(
                            "this finding has had {} patch attempts, the most allowed \
                             (CRAFTING_PATCHER_MAX_ATTEMPTS={}); fix it by hand",
                            h.attempts, req.max_attempts
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

    /// Changes the given fields of an attempt.
    pub async fn update_patch(&self, id: i64, u: PatchUpdate) -> Result<()> {
        self.write(move |tx| {
            tx.execute(
                "UPDATE patch_attempts SET
                    status = COALESCE(?2, status), stage = COALESCE(?3, stage),
                    source = COALESCE(?4, source), branch = COALESCE(?5, branch),
                    diff = COALESCE(?6, diff), explanation = COALESCE(?7, explanation),
                    confidence = COALESCE(?8, confidence), pr_url = COALESCE(?9, pr_url),
                    error = COALESCE(?10, error), updated_at = ?11
                 WHERE id = ?1",
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
                    now()
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

    /// Identities of the job's recipe lineage that may get no new attempt:
    /// one in progress, one with a pull request, or `max_attempts` made.
    pub async fn blocked_identities(&self, job: Job, max_attempts: u32) -> Result<HashSet<String>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT f.identity, COUNT(*),
                        SUM(pa.status IN ('pr_opened') OR pa.stage != 'done')
                 FROM patch_attempts pa
                 JOIN jobs j ON j.id = pa.job_id
                 JOIN findings f ON f.id = pa.finding_id
                 WHERE j.project = ?1 AND j.subproject = ?2 AND j.recipe = ?3
                 GROUP BY f.identity",
            )?;
            let rows = st.query_map(params![job.project, job.subproject, job.recipe], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?, r.get::<_, u32>(2)?))
            })?;
            let mut blocked = HashSet::new();
            for row in rows {
                let (identity, attempts, busy) = row?;
                if busy > 0 || attempts >= max_attempts {
                    blocked.insert(identity);
                }
            }
            Ok(blocked)
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

/// The attempts so far on an identity.
fn history(
    tx: &rusqlite::Transaction<'_>,
    project: &str,
    subproject: &str,
    recipe: &str,
    identity: &str,
) -> Result<History> {
    let mut st = tx.prepare_cached(
        "SELECT pa.id, pa.status, pa.stage, pa.pr_url
         FROM patch_attempts pa
         JOIN jobs j ON j.id = pa.job_id
         JOIN findings f ON f.id = pa.finding_id
         WHERE j.project = ?1 AND j.subproject = ?2 AND j.recipe = ?3 AND f.identity = ?4",
    )?;
    let rows = st.query_map(params![project, subproject, recipe, identity], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<String>>(3)?,
        ))
    })?;
    let mut h = History { attempts: 0, open_pr: None, in_progress: None };
    for row in rows {
        let (id, status, stage, pr_url) = row?;
        h.attempts += 1;
        if stage != PatchStage::Done.as_str() {
            h.in_progress = Some(id);
        }
        if status == PatchStatus::PrOpened.as_str() {
            h.open_pr = Some(pr_url.unwrap_or_default());
        }
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
