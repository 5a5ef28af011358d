//! One patch attempt, from draft to pull request.
//!
//! Each stage is written to the ledger before it starts, so an attempt cut
//! off by a stop of the service is found at start-up and closed as `error`
//! with the stage it reached. Every text stored or sent (diff, explanation,
//! errors, the pull request's body) is scrubbed of the configured secrets.

use std::collections::HashSet;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use super::agent::{self, AgentRequest, FindingBrief, PreviousAttempt};
use super::forge::{self, ForgeKind, PullRequest};
use super::git::{self, CommitFiles};
use super::{Ctx, diff, native};
use crate::error::{Error, Result};
use crate::ledger::{JobRow, PatchUpdate, ProjectRow};
use crate::model::{
    FindingRecord, Job, JobStatus, Kind, PatchAttempt, PatchStage, PatchStatus, RecipeSnapshot,
};
use crate::runner::Enqueue;
use crate::workspace::blocking;

/// How an attempt ended short of a pull request.
enum Stop {
    /// A final state with its reason.
    End(PatchStatus, String),
    /// The engine failed; recorded as `error`.
    Engine(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Stop {
        Stop::Engine(e)
    }
}

/// A diff and where it came from.
struct Draft {
    diff: String,
    explanation: String,
    confidence: Option<f64>,
    source: String,
}

/// Runs attempt `id` to its end and records how it ended.
pub(super) async fn run(ctx: &Ctx, id: i64) {
    let ledger = &ctx.engine.ledger;
    let end = match attempt(ctx, id).await {
        Ok(()) => return,
        Err(Stop::End(status, why)) => (status, why),
        Err(Stop::Engine(e)) => (PatchStatus::Error, format!("the attempt failed: {e}")),
    };
    let (status, why) = (end.0, ctx.scrub(&end.1));
    tracing::info!(patch = id, status = status.as_str(), reason = %why, "patch attempt ended");
    if let Err(e) = ledger.update_patch(id, PatchUpdate::ended(status, Some(why))).await {
        tracing::error!(patch = id, error = %e, "could not record the end of a patch attempt");
    }
}

async fn attempt(ctx: &Ctx, id: i64) -> Result<(), Stop> {
    let ledger = &ctx.engine.ledger;
    let (pa, _) = super::found(ledger.get_patch(id).await?)?;
    let row = ledger.get_job(pa.job_id.clone()).await?.ok_or(Error::NotFound { what: "job" })?;
    let project = ledger
        .get_project(row.job.project.clone())
        .await?
        .ok_or(Error::NotFound { what: "project" })?;
    let findings = ledger.findings(row.job.id.clone()).await?;
    let finding = findings
        .iter()
        .find(|f| f.id == pa.finding_id)
        .ok_or(Error::NotFound { what: "finding" })?
        .clone();
    let sha = row.job.sha.clone().ok_or_else(|| {
        Stop::End(PatchStatus::Error, "the job never checked out a commit".to_owned())
    })?;

    ledger.update_patch(id, PatchUpdate::stage(PatchStage::Drafting)).await?;
    let draft = draft(ctx, &pa, &row.job, &project, &finding, &sha).await?;
    ledger
        .update_patch(
            id,
            PatchUpdate {
                stage: Some(PatchStage::Applying),
                source: Some(draft.source.clone()),
                diff: Some(ctx.scrub(&draft.diff)),
                explanation: Some(ctx.scrub(&draft.explanation)),
                confidence: draft.confidence,
                ..Default::default()
            },
        )
        .await?;

    let branch = format!("{}{}-{}", ctx.settings.branch_prefix, row.job.id, finding.id);
    let commit = apply(ctx, &pa, &row.job, &finding, &draft, &sha, &branch).await?;
    let update = PatchUpdate { branch: Some(branch.clone()), ..Default::default() };
    ledger.update_patch(id, update).await?;

    let changed = fast_verify_files(&finding, &draft.diff, &row.job.subproject);
    let outcome = verify(ctx, &pa, &row.job, &findings, &finding, &commit, changed).await;
    let verify_job = match outcome {
        Ok(job) => job,
        Err(stop) => {
            drop_local_branch(ctx, &row.job.project, &branch).await;
            return Err(stop);
        }
    };
    ledger.update_patch(id, PatchUpdate::stage(PatchStage::Delivering)).await?;
    let delivered = deliver(ctx, &pa, &row, &project, &finding, &draft, &branch, &verify_job).await;
    drop_local_branch(ctx, &row.job.project, &branch).await;
    let url = delivered?;
    ledger
        .update_patch(
            id,
            PatchUpdate {
                pr_url: Some(url.clone()),
                ..PatchUpdate::ended(PatchStatus::PrOpened, None)
            },
        )
        .await?;
    tracing::info!(patch = id, pr = %url, "pull request opened");
    Ok(())
}

/// The tool's own fix when the finding carries one, else the agent's.
async fn draft(
    ctx: &Ctx,
    pa: &PatchAttempt,
    job: &Job,
    project: &ProjectRow,
    finding: &FindingRecord,
    sha: &str,
) -> Result<Draft, Stop> {
    let clone = ctx.engine.ws.clone_path(&job.project);
    let (f, sub, at) = (finding.finding.clone(), job.subproject.clone(), sha.to_owned());
    let radius = ctx.settings.context_lines;
    let (native, context) = tokio::task::spawn_blocking(move || -> Result<_> {
        let files = CommitFiles::open(&clone, &at)?;
        let native = native::tool_fix(&f, &sub, &files);
        let context = f.file.as_deref().and_then(|p| files.context(p, f.line, radius));
        Ok((native, context))
    })
    .await
    .map_err(|e| Error::Pool(e.to_string()))??;
    if let Some(fix) = native {
        return Ok(Draft {
            diff: fix.diff,
            explanation: fix.explanation,
            confidence: Some(1.0),
            source: format!("tool:{}", finding.finding.tool),
        });
    }
    let Some(agent_cfg) = &ctx.settings.agent else {
        return Err(Stop::End(
            PatchStatus::Error,
            "the finding carries no fix of its tool and no agent is configured \
             (CRAFTING_AGENT_KIND)"
                .to_owned(),
        ));
    };
    let previous = ctx
        .engine
        .ledger
        .patches_of_identity(job.clone(), finding.identity.clone())
        .await?
        .into_iter()
        .filter(|p| p.id != pa.id)
        .map(|p| PreviousAttempt {
            diff: p.diff.unwrap_or_default(),
            outcome: format!("{}: {}", p.status.as_str(), p.error.unwrap_or_default()),
        })
        .collect();
    let f = &finding.finding;
    let request = AgentRequest {
        project: job.project.clone(),
        git_url: project.project.git_url.clone(),
        sha: sha.to_owned(),
        language: job.recipe_snapshot.language.clone(),
        subproject: job.subproject.clone(),
        recipe: job.recipe.clone(),
        command: job.recipe_snapshot.command.clone(),
        finding: FindingBrief::from(f),
        context,
        attempt_number: pa.attempt_number,
        previous,
    };
    let reply = agent::ask(agent_cfg, &request)
        .await
        .map_err(|e| Stop::End(PatchStatus::Error, format!("the agent gave no usable fix: {e}")))?;
    Ok(Draft {
        diff: reply.diff,
        explanation: reply.explanation,
        confidence: reply.confidence,
        source: format!("agent:{}", agent_cfg.kind.as_str()),
    })
}

/// Checks and applies the diff on a fresh worktree on `branch`, commits it
/// and returns the commit. The worktree is removed whatever happens; the
/// branch only stays when the commit was made.
async fn apply(
    ctx: &Ctx,
    pa: &PatchAttempt,
    job: &Job,
    finding: &FindingRecord,
    draft: &Draft,
    sha: &str,
    branch: &str,
) -> Result<String, Stop> {
    let (project, name) = (job.project.clone(), format!("patch-{}", pa.id));
    let (sha, branch) = (sha.to_owned(), branch.to_owned());
    let text = draft.diff.clone();
    let max = ctx.settings.max_diff_bytes;
    let message = commit_message(job, finding, draft);
    let author = (ctx.settings.author_name.clone(), ctx.settings.author_email.clone());
    let applied = blocking(&ctx.engine.ws, Some(project.clone()), move |ws| {
        // Refuse what can be refused before anything is checked out.
        if let Err(e) = diff::parse(&text, max) {
            return Ok(Err(e.to_string()));
        }
        let path = ws.branch_worktree(&project, &name, &sha, &branch)?;
        let result = match diff::apply(&text, &path, max) {
            Ok(changes) => git::commit(&path, &changes, &message, (&author.0, &author.1)).map(Ok),
            Err(e) => Ok(Err(e.to_string())),
        };
        let _ = ws.release(&project, &name);
        if !matches!(result, Ok(Ok(_))) {
            let _ = ws.delete_branch(&project, &branch);
        }
        result
    })
    .await?;
    applied.map_err(|why| Stop::End(PatchStatus::ApplyFailed, why))
}

/// Re-runs the job's recipe on `commit` as a job of its own and judges it:
/// it must succeed, no longer report the finding, and report nothing the
/// original job did not. With `changed_files` the recipe may restrict itself
/// to those files. Returns the verify job.
async fn verify(
    ctx: &Ctx,
    pa: &PatchAttempt,
    job: &Job,
    before: &[FindingRecord],
    target: &FindingRecord,
    commit: &str,
    changed_files: Option<Vec<String>>,
) -> Result<Job, Stop> {
    let ledger = &ctx.engine.ledger;
    let snapshot = RecipeSnapshot { changed_files, ..job.recipe_snapshot.clone() };
    let vjob = Job::queued(Job::new_id(), &job.project, snapshot, Some(commit.to_owned()));
    let mut events = ctx.engine.events.subscribe();
    ledger.queue_verify_job(pa.id, vjob.clone(), vjob.log_path()).await?;
    ctx.runner.do_send(Enqueue { job_id: vjob.id.clone() });
    let done = loop {
        if let Some(row) = ledger.get_job(vjob.id.clone()).await?
            && row.job.status.is_terminal()
        {
            break row.job;
        }
        let woke = tokio::time::timeout(Duration::from_secs(5), events.recv()).await;
        if let Ok(Err(RecvError::Closed)) = woke {
            return Err(Error::Stopped.into());
        }
    };
    match done.status {
        JobStatus::Cancelled => {
            return Err(Stop::End(
                PatchStatus::Error,
                format!("the verify job {} was cancelled", done.id),
            ));
        }
        JobStatus::Failed if done.exit_code.is_none() || done.exit_code == Some(-1) => {
            return Err(Stop::End(
                PatchStatus::Error,
                format!(
                    "the verify job {} could not run: {}",
                    done.id,
                    done.reason.as_deref().unwrap_or("no reason recorded")
                ),
            ));
        }
        _ => {}
    }
    let after = ledger.findings(done.id.clone()).await?;
    let problems = judge(&done, before, target, &after);
    if problems.is_empty() {
        Ok(done)
    } else {
        Err(Stop::End(PatchStatus::VerifyFailed, problems.join("; ")))
    }
}

/// For a lint finding, the files the diff leaves in place, relative to the
/// job's subproject, for a recipe that can lint only those (see
/// [`RecipeSnapshot::changed_files`]). `None` when the fix touches anything
/// outside the subproject or a name the shell would split or expand.
fn fast_verify_files(finding: &FindingRecord, text: &str, subproject: &str) -> Option<Vec<String>> {
    if finding.finding.kind != Kind::Lint {
        return None;
    }
    let parsed = diff::parse(text, usize::MAX).ok()?;
    let plain = |p: &str| {
        p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b'+'))
    };
    let mut files = Vec::new();
    for file in &parsed.files {
        let relative = match subproject {
            "." => Some(file.path()),
            sub => file.path().strip_prefix(sub).and_then(|r| r.strip_prefix('/')),
        }?;
        if !plain(relative) || relative.starts_with('-') {
            return None;
        }
        // A deleted file cannot be linted; the others still are.
        if file.new_path.is_some() {
            files.push(relative.to_owned());
        }
    }
    (!files.is_empty()).then_some(files)
}

/// What is wrong with a verify job, in sentences; empty when it passed.
fn judge(
    done: &Job,
    before: &[FindingRecord],
    target: &FindingRecord,
    after: &[FindingRecord],
) -> Vec<String> {
    let mut problems = Vec::new();
    if done.status != JobStatus::Succeeded {
        problems.push(format!(
            "the verify job {} ended {} (exit code {})",
            done.id,
            done.status.as_str(),
            done.exit_code.map_or("none".to_owned(), |c| c.to_string())
        ));
    }
    if after.iter().any(|f| f.identity == target.identity) {
        problems.push(format!("the finding is still reported ({})", describe(target)));
    }
    let known: HashSet<&str> = before.iter().map(|f| f.identity.as_str()).collect();
    let new: Vec<&FindingRecord> =
        after.iter().filter(|f| !known.contains(f.identity.as_str())).collect();
    if !new.is_empty() {
        let named: Vec<String> = new.iter().take(5).map(|f| describe(f)).collect();
        let more =
            if new.len() > 5 { format!(" and {} more", new.len() - 5) } else { String::new() };
        problems.push(format!(
            "the fix brings {} new finding{}: {}{more}",
            new.len(),
            if new.len() == 1 { "" } else { "s" },
            named.join(", ")
        ));
    }
    problems
}

/// `tool code at file:line (message)`.
fn describe(f: &FindingRecord) -> String {
    let f = &f.finding;
    let place = match (&f.file, f.line) {
        (Some(file), Some(line)) => format!(" at {file}:{line}"),
        (Some(file), None) => format!(" in {file}"),
        _ => String::new(),
    };
    let message = f.message.lines().next().unwrap_or_default();
    let message: String = message.chars().take(120).collect();
    format!("{} {}{place} ({message})", f.tool, f.code)
}

/// Pushes the branch and opens the pull request; returns its address. When
/// the pull request cannot be opened the pushed branch is deleted again, and
/// the error says whether that worked.
#[allow(clippy::too_many_arguments)]
async fn deliver(
    ctx: &Ctx,
    pa: &PatchAttempt,
    row: &JobRow,
    project: &ProjectRow,
    finding: &FindingRecord,
    draft: &Draft,
    branch: &str,
    verify_job: &Job,
) -> Result<String, Stop> {
    let forge_cfg = &ctx.settings.forge;
    let kind = forge::pick(forge_cfg, &project.git_url).ok_or_else(|| {
        Stop::End(
            PatchStatus::Error,
            format!(
                "no configured forge serves {}; set CRAFTING_GITEA_URL to its Gitea or use \
                 GitHub",
                project.project.git_url
            ),
        )
    })?;
    let (owner, repo) = forge::repo_of(&project.git_url).ok_or_else(|| {
        Stop::End(
            PatchStatus::Error,
            format!("cannot tell the owner and repository from {}", project.project.git_url),
        )
    })?;
    let token = match kind {
        ForgeKind::Gitea => forge_cfg.gitea_token.clone(),
        ForgeKind::GitHub => forge_cfg.github_token.clone(),
    };
    let base = project.project.default_branch.clone().unwrap_or_else(|| "main".to_owned());
    let clone = ctx.engine.ws.clone_path(&row.job.project);
    let (url, b, t) = (project.git_url.clone(), branch.to_owned(), token.clone());
    let pushed = tokio::task::spawn_blocking(move || {
        forge::push_branch(&clone, &url, &b, kind, t.as_deref())
    })
    .await
    .map_err(|e| Error::Pool(e.to_string()))?;
    if let Err(e) = pushed {
        return Err(Stop::End(PatchStatus::Error, format!("pushing {branch} failed: {e}")));
    }
    let pr = PullRequest {
        owner,
        repo,
        head: branch.to_owned(),
        base,
        title: ctx.scrub(&title(finding)),
        body: ctx.scrub(&body(ctx, pa, &row.job, finding, draft, verify_job)),
    };
    match forge::open_pull_request(forge_cfg, kind, &pr).await {
        Ok(opened) => Ok(opened.url),
        Err(e) => {
            let clone = ctx.engine.ws.clone_path(&row.job.project);
            let (url, b) = (project.git_url.clone(), branch.to_owned());
            let removed = tokio::task::spawn_blocking(move || {
                forge::delete_remote_branch(&clone, &url, &b, kind, token.as_deref())
            })
            .await;
            let branch_note = match removed {
                Ok(Ok(())) => format!("the pushed branch {branch} was deleted again"),
                Ok(Err(d)) => format!("the pushed branch {branch} stays on the remote ({d})"),
                Err(_) => format!("the pushed branch {branch} may stay on the remote"),
            };
            Err(Stop::End(
                PatchStatus::Error,
                format!("the pull request could not be opened: {e}; {branch_note}"),
            ))
        }
    }
}

fn title(finding: &FindingRecord) -> String {
    let f = &finding.finding;
    let t = match (f.kind, &f.file) {
        (Kind::Cve, _) => format!("Fix {} ({})", f.code, f.tool),
        (_, Some(file)) => format!("Fix {} {} in {file}", f.tool, f.code),
        _ => format!("Fix {} {}", f.tool, f.code),
    };
    t.chars().take(200).collect()
}

fn commit_message(job: &Job, finding: &FindingRecord, draft: &Draft) -> String {
    let explanation: String = draft.explanation.chars().take(2000).collect();
    format!(
        "{}\n\n{}\n\nDrafted by crafting-table ({}) for finding {} of job {}.\n",
        title(finding),
        explanation.trim(),
        draft.source,
        finding.id,
        job.id
    )
}

fn body(
    ctx: &Ctx,
    pa: &PatchAttempt,
    job: &Job,
    finding: &FindingRecord,
    draft: &Draft,
    verify_job: &Job,
) -> String {
    let base = &ctx.engine.config.digest.public_url;
    let f = &finding.finding;
    let source = match draft.source.split_once(':') {
        Some(("tool", tool)) => format!("the fix {tool} itself proposes (no model involved)"),
        Some((_, kind)) => format!("a {kind} agent"),
        None => draft.source.clone(),
    };
    let confidence = draft.confidence.map_or("not given".to_owned(), |c| format!("{c:.2}"));
    let place = match (&f.file, f.line) {
        (Some(file), Some(line)) => format!("`{file}:{line}`"),
        (Some(file), None) => format!("`{file}`"),
        _ => "the project's dependencies".to_owned(),
    };
    let explanation: String = draft.explanation.chars().take(4000).collect();
    format!(
        "crafting-table drafted this change for a finding of job {job_id} and verified it. \
         It is not merged automatically: review it first.\n\n\
         **Finding:** {tool} `{code}` at {place}: {message}\n\n\
         **Fix:** {source}; confidence {confidence}.\n\n{explanation}\n\n\
         **Verified:** recipe `{recipe}` (`{command}`) ran again on the patched commit as job \
         {verify_id}: exit code 0, the finding is gone, and it reports no finding the original \
         job did not.\n\n\
         - Original job: {base}/jobs/{job_id}\n\
         - Verify job: {base}/jobs/{verify_id}\n\
         - Patch attempt {attempt} (number {number} for this finding): {base}/patches/{attempt}\n",
        job_id = job.id,
        tool = f.tool,
        code = f.code,
        message = f.message.lines().next().unwrap_or_default(),
        explanation = explanation.trim(),
        recipe = job.recipe,
        command = job.recipe_snapshot.command,
        verify_id = verify_job.id,
        attempt = pa.id,
        number = pa.attempt_number,
    )
}

async fn drop_local_branch(ctx: &Ctx, project: &str, branch: &str) {
    let (p, b) = (project.to_owned(), branch.to_owned());
    let _ = blocking(&ctx.engine.ws, Some(p.clone()), move |ws| ws.delete_branch(&p, &b)).await;
}
