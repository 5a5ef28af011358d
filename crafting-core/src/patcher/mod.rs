//! The patch loop: from a finding to a verified pull request.
//!
//! An attempt picks one actionable finding of a finished job, drafts a
//! unified diff for it (the tool's own fix when the finding carries one,
//! otherwise the configured agent), applies it on a fresh worktree on the
//! branch `<prefix><job_id>-<finding_id>`, re-runs the job's recipe on the
//! patched commit as a job of its own, and only when that job passes, the
//! finding is gone and nothing new appeared, pushes the branch and opens a
//! pull request. Nothing is ever merged.
//!
//! The [`Patcher`] actor runs attempts one at a time per project, in the
//! order they were asked for, and drafts one attempt after every job of a
//! project with `notify.auto_patch`. The pieces: [`diff`] (parse, check and
//! apply diffs), [`native`] (tools' own fixes), [`agent`] (LLM agents and
//! local programs), [`forge`] (push and pull requests), [`settings`].

pub mod agent;
mod attempt;
pub mod diff;
pub mod forge;
mod git;
pub mod native;
pub mod settings;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use actix::prelude::*;

use crate::error::{Error, Result};
use crate::ledger::{NewPatch, PatchUpdate};
use crate::model::{FindingRecord, Job, Kind, PatchAttempt, PatchStage, PatchStatus};
use crate::runner::{Runner, Shared};

pub use settings::PatcherConfig;

/// Why a finding can or cannot be patched.
pub fn actionable(f: &FindingRecord) -> std::result::Result<(), String> {
    let f = &f.finding;
    match f.kind {
        Kind::Lint if f.file.is_some() && f.line.is_some() => Ok(()),
        Kind::Lint => Err("a lint finding needs a file and a line to be patched".to_owned()),
        Kind::Cve if f.suggested_fix.is_some() => Ok(()),
        Kind::Cve => Err("the advisory names no fixed version to move to".to_owned()),
        Kind::TestFail | Kind::RecipeFail => Err(format!(
            "findings of kind {} are not patched: only lint findings with a file and line, and \
             vulnerabilities with a fixed version, are",
            f.kind.as_str()
        )),
    }
}

/// The finding an attempt should fix: the most severe actionable one that
/// has a fix source and whose identity may get another attempt (ties go to
/// the first reported).
pub fn pick<'a>(
    findings: &'a [FindingRecord],
    blocked: &HashSet<String>,
    has_agent: bool,
) -> Option<&'a FindingRecord> {
    findings
        .iter()
        .filter(|f| actionable(f).is_ok())
        .filter(|f| has_agent || native::has_tool_fix(&f.finding))
        .filter(|f| !blocked.contains(&f.identity))
        .min_by_key(|f| (std::cmp::Reverse(f.finding.severity), f.id))
}

/// What attempts need: the engine's shared state, the runner for verify
/// jobs and the patch settings.
pub(crate) struct Ctx {
    pub engine: Arc<Shared>,
    pub runner: Addr<Runner>,
    pub settings: PatcherConfig,
    pub secrets: Vec<String>,
}

impl Ctx {
    /// `text` with every configured secret replaced.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = crate::validate::redact_credentials(text);
        for s in &self.secrets {
            out = out.replace(s.as_str(), "[redacted]");
        }
        out
    }
}

/// The patch actor: a queue of attempts per project, one running at a time
/// in each.
pub struct Patcher {
    ctx: Arc<Ctx>,
    queues: HashMap<String, VecDeque<i64>>,
    busy: HashSet<String>,
}

impl Patcher {
    /// A patcher over the engine's shared state.
    pub(crate) fn new(engine: Arc<Shared>, runner: Addr<Runner>) -> Patcher {
        let settings = engine.config.patcher.clone();
        let mut secrets = settings.secrets();
        // The first admin bearer sits in a file an agent could read.
        if let Ok(bearer) = std::fs::read_to_string(engine.config.admin_bearer_path()) {
            secrets.extend(Some(bearer.trim().to_owned()).filter(|b| b.len() >= 8));
        }
        Patcher {
            ctx: Arc::new(Ctx { engine, runner, settings, secrets }),
            queues: HashMap::new(),
            busy: HashSet::new(),
        }
    }

    fn pump(&mut self, project: &str, ctx: &mut Context<Self>) {
        if self.busy.contains(project) {
            return;
        }
        let Some(id) = self.queues.get_mut(project).and_then(VecDeque::pop_front) else {
            return;
        };
        self.busy.insert(project.to_owned());
        let me = ctx.address();
        let run = self.ctx.clone();
        let project = project.to_owned();
        actix::spawn(async move {
            attempt::run(&run, id).await;
            me.do_send(AttemptDone { project });
        });
    }
}

impl Actor for Patcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let settings = &self.ctx.settings;
        if !settings.enabled() {
            tracing::info!(
                "patch loop off: no forge configured (CRAFTING_GITEA_URL and _TOKEN, or CRAFTING_GITHUB_TOKEN)"
            );
            return;
        }
        let forges: Vec<&str> = [
            settings.forge.gitea_url.as_deref().map(|_| "gitea"),
            settings.forge.github_token.as_deref().map(|_| "github"),
        ]
        .into_iter()
        .flatten()
        .collect();
        tracing::info!(
            forges = %forges.join(","),
            agent = settings.agent.as_ref().map_or("none (tool fixes only)", |a| a.kind.as_str()),
            max_attempts = settings.max_attempts,
            "patch loop on"
        );
        // Drafts after jobs of projects with auto_patch.
        let mut events = self.ctx.engine.events.subscribe();
        let run = self.ctx.clone();
        let me = ctx.address();
        actix::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(done) => {
                        let (run, me) = (run.clone(), me.clone());
                        actix::spawn(async move { auto_patch(&run, &me, done.job).await });
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "patcher missed finished jobs");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
    }
}

impl Supervised for Patcher {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!(
            queued = self.queues.values().map(VecDeque::len).sum::<usize>(),
            "patcher restarting"
        );
    }
}

/// Queues an attempt already stored as `queued`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Submit {
    /// The attempt's project.
    pub project: String,
    /// The attempt.
    pub attempt_id: i64,
}

/// Sent by an attempt's task when it is over.
#[derive(Message)]
#[rtype(result = "()")]
struct AttemptDone {
    project: String,
}

impl Handler<Submit> for Patcher {
    type Result = ();

    fn handle(&mut self, m: Submit, ctx: &mut Context<Self>) {
        self.queues.entry(m.project.clone()).or_default().push_back(m.attempt_id);
        self.pump(&m.project, ctx);
    }
}

impl Handler<AttemptDone> for Patcher {
    type Result = ();

    fn handle(&mut self, m: AttemptDone, ctx: &mut Context<Self>) {
        self.busy.remove(&m.project);
        self.pump(&m.project, ctx);
    }
}

/// After a job of a project with `notify.auto_patch`: one attempt on its
/// most severe actionable finding. Verify jobs are never patched this way.
async fn auto_patch(ctx: &Ctx, me: &Addr<Patcher>, job: Job) {
    let ledger = &ctx.engine.ledger;
    if job.findings_count == 0 || job.status == crate::model::JobStatus::Cancelled {
        return;
    }
    let wanted = async {
        let project = ledger.get_project(job.project.clone()).await?;
        if !project.is_some_and(|p| p.project.notify.auto_patch) {
            return Ok::<_, Error>(None);
        }
        if ledger.patch_of_verify_job(job.id.clone()).await?.is_some() {
            return Ok(None);
        }
        let findings = ledger.findings(job.id.clone()).await?;
        let blocked = ledger.blocked_identities(job.clone(), ctx.settings.max_attempts).await?;
        let Some(f) = pick(&findings, &blocked, ctx.settings.agent.is_some()) else {
            return Ok(None);
        };
        let new = NewPatch {
            job_id: job.id.clone(),
            finding_id: f.id,
            max_attempts: ctx.settings.max_attempts,
        };
        Ok(Some(ledger.insert_patch(new).await?))
    };
    match wanted.await {
        Ok(Some(attempt)) => {
            tracing::info!(job_id = %job.id, patch = attempt.id, "automatic patch attempt queued");
            me.do_send(Submit { project: job.project.clone(), attempt_id: attempt.id });
        }
        Ok(None) => {}
        // Another attempt on the identity began meanwhile, or the limit is met.
        Err(Error::Conflict { .. }) => {}
        Err(e) => tracing::warn!(job_id = %job.id, error = %e, "automatic patch attempt not made"),
    }
}

/// At start-up: attempts that never began are queued again; attempts cut
/// off half-way by a stop of the service end as `error`, saying where (and,
/// for one cut off while delivering, that its branch and pull request may
/// exist).
pub(crate) async fn sweep(ledger: &crate::ledger::Ledger, me: &Addr<Patcher>) -> Result<()> {
    for pa in ledger.unfinished_patches().await? {
        if pa.stage == PatchStage::Queued {
            me.do_send(Submit { project: pa.project.clone(), attempt_id: pa.id });
            continue;
        }
        let mut why = format!("the service stopped while the attempt was {}", pa.stage.as_str());
        match (pa.stage, &pa.branch) {
            (PatchStage::Delivering, Some(branch)) => why.push_str(&format!(
                "; the branch {branch} may have been pushed and its pull request opened: look on                  the forge before asking again"
            )),
            _ => why.push_str("; ask for a new attempt"),
        }
        tracing::warn!(patch = pa.id, "{why}");
        let ended = PatchUpdate::ended(PatchStatus::Error, Some(why));
        ledger.update_patch(pa.id, pa.job_id.clone(), ended).await?;
    }
    Ok(())
}

/// A stored attempt, or a 404.
pub(crate) fn found(p: Option<(PatchAttempt, String)>) -> Result<(PatchAttempt, String)> {
    p.ok_or(Error::NotFound { what: "patch attempt" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Finding, Severity};

    fn record(
        id: i64,
        kind: Kind,
        severity: Severity,
        file: Option<&str>,
        fix: Option<&str>,
    ) -> FindingRecord {
        let mut f = Finding::new(kind, severity, "mypy", format!("code-{id}"), "message").at(
            file.map(str::to_owned),
            file.map(|_| 3),
            None,
        );
        f.suggested_fix = fix.map(str::to_owned);
        FindingRecord {
            id,
            job_id: "j".into(),
            finding: f,
            identity: format!("identity-{id}"),
            created_at: String::new(),
        }
    }

    #[test]
    fn only_lints_with_a_place_and_fixable_advisories_are_actionable() {
        assert!(actionable(&record(1, Kind::Lint, Severity::Warn, Some("a.py"), None)).is_ok());
        let no_place = actionable(&record(2, Kind::Lint, Severity::Warn, None, None));
        assert!(no_place.unwrap_err().contains("file and a line"));
        assert!(
            actionable(&record(3, Kind::Cve, Severity::Error, None, Some("bump x to 2"))).is_ok()
        );
        let unfixed = actionable(&record(4, Kind::Cve, Severity::Error, None, None));
        assert!(unfixed.unwrap_err().contains("fixed version"));
        let test = actionable(&record(5, Kind::TestFail, Severity::Error, Some("t.py"), None));
        assert!(test.unwrap_err().starts_with("findings of kind test_fail are not patched"));
    }

    #[test]
    fn the_most_severe_open_finding_is_picked() {
        let findings = vec![
            record(1, Kind::Lint, Severity::Warn, Some("a.py"), None),
            record(2, Kind::TestFail, Severity::Critical, Some("t.py"), None),
            record(3, Kind::Lint, Severity::Error, Some("b.py"), None),
            record(4, Kind::Lint, Severity::Error, Some("c.py"), None),
        ];
        let none = HashSet::new();
        assert_eq!(pick(&findings, &none, true).map(|f| f.id), Some(3));
        let blocked: HashSet<String> = ["identity-3".to_owned()].into();
        assert_eq!(pick(&findings, &blocked, true).map(|f| f.id), Some(4));
        // Without an agent only findings carrying their tool's fix qualify;
        // mypy proposes none.
        assert_eq!(pick(&findings, &none, false).map(|f| f.id), None);
    }
}
