//! One patch attempt, from draft to pull request.
//!
//! Each stage is written to the ledger before it starts, so an attempt cut
//! off by a stop of the service is found at start-up and closed as `error`
//! with the stage it reached. Every text stored or sent (explanation, errors,
//! the commit message, the pull request's body) is scrubbed of the configured
//! secrets, and a diff that holds one is refused rather than pushed.

use std::collections::HashSet;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use super::agent::{self, AgentRequest, FindingBrief, PreviousAttempt};
use super::forge::{self, ForgeError, ForgeKind, PullRequest};
use super::git::{self, CommitFiles};
use super::{Ctx, diff, native};
use crate::error::{Error, Result};
use crate::ledger::{PatchUpdate, ProjectRow};
use crate::model::{
    FindingRecord, Job, JobStatus, Kind, PatchAttempt, PatchStage, PatchStatus, RecipeSnapshot,
};
use crate::runner::Enqueue;
use crate::workspace::blocking;

/// Longest explanation stored, committed or sent, in characters.
const MAX_EXPLANATION: usize = 4000;

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

fn error(why: impl Into<String>) -> Stop {
    Stop::End(PatchStatus::Error, why.into())
}

/// A diff and where it came from.
struct Draft {
    diff: String,
    explanation: String,
    confidence: Option<f64>,
    source: String,
}

/// Everything one attempt works on, loaded once.
struct Attempt<'a> {
    ctx: &'a Ctx,
    pa: PatchAttempt,
    job: Job,
    project: ProjectRow,
    findings: Vec<FindingRecord>,
    finding: FindingRecord,
    sha: String,
    /// The branch the pull request goes into.
    base: String,
}

impl Attempt<'_> {
    async fn update(&self, u: PatchUpdate) -> Result<()> {
        self.ctx.engine.ledger.update_patch(self.pa.id, self.pa.job_id.clone(), u).await
    }

    fn branch(&self) -> String {
        format!("{}{}-{}", self.ctx.settings.branch_prefix, self.job.id, self.finding.id)
    }
}

/// Runs attempt `id` to its end and records how it ended.
pub(super) async fn run(ctx: &Ctx, id: i64) {
    let ledger = &ctx.engine.ledger;
    let (status, why, job_id) = match load(ctx, id).await {
        Ok(a) => match attempt(&a).await {
            Ok(()) => return,
            Err(Stop::End(status, why)) => (status, why, a.pa.job_id),
            Err(Stop::Engine(e)) => {
                (PatchStatus::Error, format!("the attempt failed: {e}"), a.pa.job_id)
            }
        },
        Err(stop) => {
            let Ok(Some((pa, _))) = ledger.get_patch(id).await else { return };
            match stop {
                Stop::End(status, why) => (status, why, pa.job_id),
                Stop::Engine(e) => {
                    (PatchStatus::Error, format!("the attempt failed: {e}"), pa.job_id)
                }
            }
        }
    };
    let why = ctx.scrub(&why);
    tracing::info!(patch = id, status = status.as_str(), reason = %why, "patch attempt ended");
    if let Err(e) = ledger.update_patch(id, job_id, PatchUpdate::ended(status, Some(why))).await {
        tracing::error!(patch = id, error = %e, "could not record the end of a patch attempt");
    }
}

/// Reads the attempt, its job, project and finding, and the branch the fix
/// would go into (refusing a job whose commit is not on that branch).
async fn load(ctx: &Ctx, id: i64) -> Result<Attempt<'_>, Stop> {
    let ledger = &ctx.engine.ledger;
    let (pa, _) = super::found(ledger.get_patch(id).await?)?;
    let row = ledger.get_job(pa.job_id.clone()).await?.ok_or(Error::NotFound { what: "job" })?;
    let job = row.job;
    let project = ledger
        .get_project(job.project.clone())
        .await?
        .ok_or(Error::NotFound { what: "project" })?;
    let findings = ledger.findings(job.id.clone()).await?;
    let finding = findings
        .iter()
        .find(|f| f.id == pa.finding_id)
        .ok_or(Error::NotFound { what: "finding" })?
        .clone();
    let sha = job.sha.clone().ok_or_else(|| error("the job never checked out a commit"))?;
    let clone = ctx.engine.ws.clone_path(&job.project);
    let default = project.project.default_branch.clone().unwrap_or_else(|| "main".to_owned());
    let (at, asked) = (sha.clone(), job.git_ref.clone());
    let base =
        tokio::task::spawn_blocking(move || git::pr_base(&clone, &at, asked.as_deref(), &default))
            .await
            .map_err(|e| Error::Pool(e.to_string()))??
            .map_err(error)?;
    Ok(Attempt { ctx, pa, job, project, findings, finding, sha, base })
}

async fn attempt(a: &Attempt<'_>) -> Result<(), Stop> {
    let ctx = a.ctx;
    a.update(PatchUpdate::stage(PatchStage::Drafting)).await?;
    let draft = draft(a).await?;
    // What is stored must stay small whatever the agent sent; an oversized
    // diff is refused below and only its size is kept.
    let stored_diff = if draft.diff.len() <= ctx.settings.max_diff_bytes {
        ctx.scrub(&draft.diff)
    } else {
        format!("(a diff of {} bytes, not kept)", draft.diff.len())
    };
    a.update(PatchUpdate {
        stage: Some(PatchStage::Applying),
        diff: Some(stored_diff),
        explanation: Some(ctx.scrub(&draft.explanation)),
        confidence: draft.confidence,
        ..Default::default()
    })
    .await?;

    let (commit, parsed) = apply(a, &draft).await?;
    let files = diff::touched(&parsed);
    let changed = fast_verify_files(&a.finding, &parsed, &a.job.subproject);
    let verify_job = match verify(a, &commit, changed).await {
        Ok(job) => job,
        Err(stop) => {
            drop_local_branch(a).await;
            return Err(stop);
        }
    };
    a.update(PatchUpdate {
        stage: Some(PatchStage::Delivering),
        branch: Some(a.branch()),
        ..Default::default()
    })
    .await?;
    let delivered = deliver(a, &draft, &files, &verify_job).await;
    drop_local_branch(a).await;
    let url = delivered?;
    a.update(PatchUpdate {
        pr_url: Some(url.clone()),
        ..PatchUpdate::ended(PatchStatus::PrOpened, None)
    })
    .await?;
    tracing::info!(patch = a.pa.id, pr = %url, "pull request opened");
    Ok(())
}

/// The tool's own fix when the finding carries one, else the agent's.
async fn draft(a: &Attempt<'_>) -> Result<Draft, Stop> {
    let ctx = a.ctx;
    let clone = ctx.engine.ws.clone_path(&a.job.project);
    let (f, sub, at) = (a.finding.finding.clone(), a.job.subproject.clone(), a.sha.clone());
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
        let source = format!("tool:{}", a.finding.finding.tool);
        a.update(PatchUpdate { source: Some(source.clone()), ..Default::default() }).await?;
        return Ok(Draft {
            diff: fix.diff,
            explanation: fix.explanation,
            confidence: Some(1.0),
            source,
        });
    }
    let Some(agent_cfg) = &ctx.settings.agent else {
        return Err(error(
            "the finding carries no fix of its tool and no agent is configured \
             (CRAFTING_AGENT_KIND)",
        ));
    };
    let source = format!("agent:{}", agent_cfg.kind.as_str());
    a.update(PatchUpdate { source: Some(source.clone()), ..Default::default() }).await?;
    let previous = ctx
        .engine
        .ledger
        .patches_of_identity(a.job.clone(), a.finding.identity.clone())
        .await?
        .into_iter()
        .filter(|p| p.id != a.pa.id)
        .map(|p| PreviousAttempt {
            diff: p.diff.unwrap_or_default(),
            outcome: format!("{}: {}", p.status.as_str(), p.error.unwrap_or_default()),
        })
        .collect();
    let job = &a.job;
    let request = AgentRequest {
        project: job.project.clone(),
        git_url: a.project.project.git_url.clone(),
        sha: a.sha.clone(),
        language: job.recipe_snapshot.language.clone(),
        subproject: job.subproject.clone(),
        recipe: job.recipe.clone(),
        command: job.recipe_snapshot.command.clone(),
        finding: FindingBrief::from(&a.finding.finding),
        context,
        attempt_number: a.pa.attempt_number,
        previous,
    };
    let reply = agent::ask(agent_cfg, &request)
        .await
        .map_err(|e| error(format!("the agent gave no usable fix: {e}")))?;
    Ok(Draft {
        diff: reply.diff,
        explanation: reply.explanation.chars().take(MAX_EXPLANATION).collect(),
        confidence: reply.confidence,
        source,
    })
}

/// Checks and applies the diff on a fresh worktree on the attempt's branch,
/// commits it and returns the commit and the parsed diff. The worktree
/// is removed whatever happens; the branch only stays when the commit was
/// made.
async fn apply(a: &Attempt<'_>, draft: &Draft) -> Result<(String, diff::Diff), Stop> {
    let ctx = a.ctx;
    let refuse = |why: String| Stop::End(PatchStatus::ApplyFailed, why);
    let max = ctx.settings.max_diff_bytes;
    // Refuse what can be refused before anything is checked out.
    let parsed = diff::parse(&draft.diff, max).map_err(|e| refuse(e.to_string()))?;
    if ctx.scrub(&draft.diff) != draft.diff {
        return Err(refuse(
            "the diff contains one of the service's tokens; it is not applied or pushed".into(),
        ));
    }
    let sub = a.job.subproject.as_str();
    if let Some(outside) =
        diff::touched(&parsed).iter().find(|f| sub != "." && !f.starts_with(&format!("{sub}/")))
    {
        return Err(refuse(format!(
            "the diff changes {outside:?}, outside the job's subproject {sub:?}: only that \
             subproject's recipe would verify it"
        )));
    }
    let (project, name) = (a.job.project.clone(), format!("patch-{}", a.pa.id));
    let (sha, branch, planned) = (a.sha.clone(), a.branch(), parsed.clone());
    let message = commit_message(a, draft);
    let author = (ctx.settings.author_name.clone(), ctx.settings.author_email.clone());
    let applied = blocking(&ctx.engine.ws, Some(project.clone()), move |ws| {
        let path = ws.branch_worktree(&project, &name, &sha, &branch)?;
        let written = diff::plan(&planned, &path)
            .and_then(|changes| diff::write(&changes, &path).map(|()| changes));
        let result = match written {
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
    let commit = applied.map_err(refuse)?;
    Ok((commit, parsed))
}

/// For a lint finding, the files the diff leaves in place, relative to the
/// job's subproject, for a recipe that can lint only those (see
/// [`RecipeSnapshot::changed_files`]). `None` when the fix touches anything
/// outside the subproject or a name the shell would split or expand.
fn fast_verify_files(
    finding: &FindingRecord,
    parsed: &diff::Diff,
    subproject: &str,
) -> Option<Vec<String>> {
    if finding.finding.kind != Kind::Lint {
        return None;
    }
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

/// Re-runs the job's recipe on `commit` as a job of its own and judges it:
/// it must succeed, no longer report the finding, and report nothing the
/// original job did not. With `changed_files` the recipe may restrict itself
/// to those files. Returns the verify job.
async fn verify(
    a: &Attempt<'_>,
    commit: &str,
    changed_files: Option<Vec<String>>,
) -> Result<Job, Stop> {
    let ctx = a.ctx;
    let ledger = &ctx.engine.ledger;
    let snapshot = RecipeSnapshot { changed_files, ..a.job.recipe_snapshot.clone() };
    let vjob = Job::queued(Job::new_id(), &a.job.project, snapshot, Some(commit.to_owned()));
    let mut events = ctx.engine.events.subscribe();
    ledger.queue_verify_job(a.pa.id, vjob.clone(), vjob.log_path()).await?;
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
            return Err(error(format!("the verify job {} was cancelled", done.id)));
        }
        JobStatus::Failed if done.exit_code.is_none() || done.exit_code == Some(-1) => {
            return Err(error(format!(
                "the verify job {} could not run: {}",
                done.id,
                done.reason.as_deref().unwrap_or("no reason recorded")
            )));
        }
        _ => {}
    }
    let after = ledger.findings(done.id.clone()).await?;
    let problems = judge(&done, &a.findings, &a.finding, &after);
    if problems.is_empty() {
        Ok(done)
    } else {
        Err(Stop::End(PatchStatus::VerifyFailed, problems.join("; ")))
    }
}

/// What is wrong with a verify job, in sentences; empty when it passed.
fn judge(
    done: &Job,
    before: &[FindingRecord],
    target: &FindingRecord,
    after: &[FindingRecord],
) -> Vec<String> {
    let still = after.iter().any(|f| f.identity == target.identity);
    let known: HashSet<&str> = before.iter().map(|f| f.identity.as_str()).collect();
    let new: Vec<&FindingRecord> =
        after.iter().filter(|f| !known.contains(f.identity.as_str())).collect();
    let mut problems = Vec::new();
    if done.status != JobStatus::Succeeded {
        let mut p = format!(
            "the verify job {} ended {} (exit code {})",
            done.id,
            done.status.as_str(),
            done.exit_code.map_or("none".to_owned(), |c| c.to_string())
        );
        if !still && new.is_empty() {
            p.push_str(&format!(
                " although the finding is gone and nothing new appeared: the recipe still \
                 fails on the job's {} other finding(s); a recipe that lints only \
                 CRAFTING_CHANGED_FILES when they are set can verify one fix at a time (README, \
                 Fast verify)",
                after.len()
            ));
        }
        problems.push(p);
    }
    if still {
        problems.push(format!("the finding is still reported ({})", describe(target)));
    }
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
/// the forge clearly refused the pull request the pushed branch is deleted
/// again; when its answer was lost (a timeout, an unreadable answer, "already
/// exists") the branch stays, since the pull request may be open. The error
/// says which.
async fn deliver(
    a: &Attempt<'_>,
    draft: &Draft,
    files: &[String],
    verify_job: &Job,
) -> Result<String, Stop> {
    let ctx = a.ctx;
    let forge_cfg = &ctx.settings.forge;
    let shown_url = &a.project.project.git_url;
    let kind = forge::pick(forge_cfg, &a.project.git_url).ok_or_else(|| {
        error(format!(
            "no configured forge serves {shown_url}: its host is neither CRAFTING_GITEA_URL's \
             nor GitHub's, and a forge token is only ever sent to its own host"
        ))
    })?;
    let (owner, repo) = forge::repo_of(&a.project.git_url)
        .ok_or_else(|| error(format!("cannot tell the owner and repository from {shown_url}")))?;
    let token = match kind {
        ForgeKind::Gitea => forge_cfg.gitea_token.clone(),
        ForgeKind::GitHub => forge_cfg.github_token.clone(),
    };
    let branch = a.branch();
    let push = {
        let clone = ctx.engine.ws.clone_path(&a.job.project);
        let (url, b, t) = (a.project.git_url.clone(), branch.clone(), token.clone());
        move || forge::push_branch(&clone, &url, &b, kind, t.as_deref())
    };
    tokio::task::spawn_blocking(push)
        .await
        .map_err(|e| Error::Pool(e.to_string()))?
        .map_err(|e| error(format!("pushing {branch} failed: {e}{}", token_hint(&e, kind))))?;
    let pr = PullRequest {
        owner,
        repo,
        head: branch.clone(),
        base: a.base.clone(),
        title: ctx.scrub(&title(&a.finding)),
        body: ctx.scrub(&body(a, draft, files, verify_job)),
    };
    let e = match forge::open_pull_request(forge_cfg, kind, &pr).await {
        Ok(opened) => return Ok(opened.url),
        Err(e) => e,
    };
    let answer_lost = match &e {
        ForgeError::Timeout { .. } | ForgeError::BadResponse { .. } => true,
        ForgeError::Status { status, .. } => matches!(status, 409 | 422),
        _ => false,
    };
    let note = if answer_lost {
        format!(
            "the branch {branch} stays on the remote, since the pull request may have been \
             opened: look for it on the forge before asking again"
        )
    } else {
        let clone = ctx.engine.ws.clone_path(&a.job.project);
        let (url, b) = (a.project.git_url.clone(), branch.clone());
        let removed = tokio::task::spawn_blocking(move || {
            forge::delete_remote_branch(&clone, &url, &b, kind, token.as_deref())
        })
        .await;
        match removed {
            Ok(Ok(())) => format!("the pushed branch {branch} was deleted again"),
            Ok(Err(d)) => format!("the pushed branch {branch} stays on the remote ({d})"),
            Err(_) => format!("the pushed branch {branch} may stay on the remote"),
        }
    };
    Err(error(format!("the pull request could not be opened: {e}{}; {note}", token_hint(&e, kind))))
}

/// A pointer to the variable to check when the forge refused the token.
fn token_hint(e: &ForgeError, kind: ForgeKind) -> &'static str {
    let refused = match e {
        ForgeError::Status { status, .. } => matches!(status, 401 | 403),
        other => other.to_string().contains("authentication"),
    };
    match (refused, kind) {
        (false, _) => "",
        (true, ForgeKind::Gitea) => {
            " (check CRAFTING_GITEA_TOKEN: it must be valid and allowed to push and open pull \
             requests)"
        }
        (true, ForgeKind::GitHub) => {
            " (check CRAFTING_GITHUB_TOKEN: it must be valid and allowed to push and open pull \
             requests)"
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

fn commit_message(a: &Attempt<'_>, draft: &Draft) -> String {
    let message = format!(
        "{}\n\n{}\n\nDrafted by crafting-table ({}) for finding {} of job {}.\n",
        title(&a.finding),
        draft.explanation.trim(),
        draft.source,
        a.finding.id,
        a.job.id
    );
    a.ctx.scrub(&message)
}

fn body(a: &Attempt<'_>, draft: &Draft, files: &[String], verify_job: &Job) -> String {
    let base_url = &a.ctx.engine.config.digest.public_url;
    let (job, f) = (&a.job, &a.finding.finding);
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
    let changed: Vec<String> = files.iter().map(|f| format!("`{f}`")).collect();
    let restricted = match &verify_job.recipe_snapshot.changed_files {
        Some(_) => " with CRAFTING_CHANGED_FILES set to the changed files",
        None => "",
    };
    format!(
        "crafting-table drafted this change for a finding of job {job_id} and verified it. \
         It is not merged automatically: review it first.\n\n\
         **Finding:** {tool} `{code}` at {place}: {message}\n\n\
         **Fix:** {source}; confidence {confidence}. Changes {changed}, on top of {sha} \
         ({base}).\n\n{explanation}\n\n\
         **Verified:** recipe `{recipe}` (`{command}`) ran again on the patched commit as job \
         {verify_id}{restricted}: exit code 0, the finding is gone, and it reports no finding \
         the original job did not.\n\n\
         - Original job: {base_url}/jobs/{job_id}\n\
         - Verify job: {base_url}/jobs/{verify_id}\n\
         - Patch attempt {attempt} (number {number} for this finding): \
         {base_url}/patches/{attempt}\n",
        job_id = job.id,
        tool = f.tool,
        code = f.code,
        message = f.message.lines().next().unwrap_or_default(),
        changed = changed.join(", "),
        sha = a.sha,
        base = a.base,
        explanation = draft.explanation.trim(),
        recipe = job.recipe,
        command = job.recipe_snapshot.command,
        verify_id = verify_job.id,
        attempt = a.pa.id,
        number = a.pa.attempt_number,
    )
}

async fn drop_local_branch(a: &Attempt<'_>) {
    let (p, b) = (a.job.project.clone(), a.branch());
    let _ = blocking(&a.ctx.engine.ws, Some(p.clone()), move |ws| ws.delete_branch(&p, &b)).await;
}
