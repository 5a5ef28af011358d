//! The MCP server: one tool per API operation, plus `wait_for_job` and the
//! bounded log and findings readers.
//!
//! Every tool answers a structured JSON result. A failed API call becomes a
//! tool result with `isError: true` whose body is
//! `{"ok": false, "error": "<sentence>", "code": "<snake_case>", "http_status"?}`,
//! so the agent reads the API's own message; protocol errors are left for
//! requests the server cannot route at all.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, Implementation, ProgressNotificationParam, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler, tool, tool_handler, tool_router};
use serde_json::{Value, json};

use crate::api::{Api, ApiError};
use crate::findings::{self, Filter};
use crate::params::*;
use crate::tail::{tail, tail_text};

/// Name the server gives itself in `initialize`.
pub const SERVER_NAME: &str = "crafting-table-mcp";

/// Slack read before the byte window of `get_job_log`, so the window can start
/// on a whole line.
const LOG_SLACK_BYTES: u64 = 4096;

/// Longest pause between two polls of `wait_for_job`.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// What the token may do, as found at startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// An admin token: the admin tools are offered.
    Admin,
    /// A user token, or one whose scope could not be checked.
    User,
}

/// Asks the API whether the token is an admin's: `GET /admin/tokens` answers
/// 200 only for admins (404 for others). Any failure counts as a user token
/// and is logged; the tools report the same failure when they are called.
pub async fn probe_access(api: &Api) -> Access {
    match api.get(&["admin", "tokens"], &[]).await {
        Ok(_) => Access::Admin,
        Err(ApiError::Api { status: 404 | 403, .. }) => Access::User,
        Err(ApiError::Api { status: 401, .. }) => {
            tracing::warn!(
                base_url = api.base_url(),
                "the API refused CRAFTING_TABLE_TOKEN (401); every tool will report it until \
                 the token is fixed and the server restarted"
            );
            Access::User
        }
        Err(err) => {
            tracing::warn!(
                base_url = api.base_url(),
                error = %err,
                "could not check the token's scope; admin tools are not offered"
            );
            Access::User
        }
    }
}

/// The MCP server for one crafting-table service and one token.
#[derive(Debug, Clone)]
pub struct CraftingMcp {
    api: Arc<Api>,
    tool_router: ToolRouter<CraftingMcp>,
}

impl CraftingMcp {
    /// A server whose tool list fits `access`.
    pub fn new(api: Api, access: Access) -> Self {
        let mut tool_router = Self::user_tools();
        if access == Access::Admin {
            tool_router += Self::admin_tools();
        }
        CraftingMcp { api: Arc::new(api), tool_router }
    }

    /// Names of the tools this server offers.
    pub fn tool_names(&self) -> Vec<String> {
        self.tool_router.list_all().into_iter().map(|t| t.name.into_owned()).collect()
    }
}

/// A tool's answer from an API result.
fn respond(tool: &'static str, result: Result<Value, ApiError>) -> CallToolResult {
    match result {
        Ok(value) => {
            tracing::debug!(tool, "tool succeeded");
            CallToolResult::structured(value)
        }
        Err(err) => {
            tracing::info!(tool, code = err.code(), "tool failed");
            CallToolResult::structured_error(err.to_json())
        }
    }
}

/// The bounded end of a `log_tail` field, with a note when it was cut.
fn bounded_tail(view: &mut Value, lines: usize) {
    let text = view.get("log_tail").and_then(Value::as_str).unwrap_or_default();
    let cut = tail_text(text, lines.min(MAX_TAIL_LINES), MAX_TAIL_BYTES);
    view["log_tail_truncated"] = json!(cut.omitted_before);
    view["log_tail"] = json!(cut.text);
}

fn job_status(view: &Value) -> String {
    view.pointer("/job/status").and_then(Value::as_str).unwrap_or("unknown").to_owned()
}

fn check_range(name: &str, value: u64, min: u64, max: u64) -> Result<(), ApiError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "invalid_argument",
            format!("{name} must be from {min} to {max}; got {value}."),
        ))
    }
}

#[tool_router(router = user_tools, vis = "pub(crate)")]
impl CraftingMcp {
    /// Checks that the crafting-table service is up. Returns its status, version and
    /// runner figures (workers, running, queued, finished). Needs no token.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn healthz(&self) -> CallToolResult {
        respond("healthz", self.api.get(&["healthz"], &[]).await)
    }

    /// Lists the projects this token owns (every project for an admin token).
    /// Returns `{"projects": [{name, owner, git_url, default_branch, languages,
    /// subprojects, notify, created_at, updated_at}]}`.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn list_projects(&self) -> CallToolResult {
        respond("list_projects", self.api.get(&["projects"], &[]).await)
    }

    /// Reads one project's settings: repository, default branch, subprojects with
    /// their recipes, notification settings. Returns `{"project": {...}}`; a project
    /// of another token answers not_found.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn get_project(&self, Parameters(p): Parameters<ProjectName>) -> CallToolResult {
        respond("get_project", self.api.get(&["projects", &p.name], &[]).await)
    }

    /// Registers a git repository as a project owned by this token, with one or more
    /// subprojects, each with a language and named recipes (shell commands). The
    /// service clones the repository to check it, so a wrong URL fails here. Returns
    /// `{"project": {...}}`. Fails with project_exists when the name is taken.
    #[tool(annotations(read_only_hint = false, destructive_hint = false, open_world_hint = true))]
    async fn register_project(&self, Parameters(p): Parameters<RegisterProject>) -> CallToolResult {
        let result = match serde_json::to_value(&p) {
            Ok(body) => self.api.post(&["projects"], &body).await,
            Err(e) => Err(ApiError::invalid("invalid_argument", e.to_string())),
        };
        respond("register_project", result)
    }

    /// Changes a project's settings. Fields left out keep their current values;
    /// `subprojects` and `notify`, when given, replace the current ones whole (read
    /// them first with get_project to edit one recipe). Returns `{"project": {...}}`.
    #[tool(annotations(
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = true,
        open_world_hint = true
    ))]
    async fn update_project(&self, Parameters(p): Parameters<UpdateProject>) -> CallToolResult {
        respond("update_project", self.update_project_inner(p).await)
    }

    /// Deletes a project with all its jobs, logs, findings, patch attempts and
    /// workspace; running jobs are cancelled first. Cannot be undone. Returns
    /// `{"deleted": "<name>"}`.
    #[tool(annotations(
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = false,
        open_world_hint = false
    ))]
    async fn delete_project(&self, Parameters(p): Parameters<ProjectName>) -> CallToolResult {
        respond("delete_project", self.api.delete(&["projects", &p.name]).await)
    }

    /// Queues a run of one recipe of a project's subproject at a git ref (the default
    /// branch when none). Returns at once with `{"job_id", "job": {...}}`; follow it
    /// with wait_for_job, then get_findings and get_job_log.
    #[tool(annotations(read_only_hint = false, destructive_hint = false, open_world_hint = true))]
    async fn run_recipe(&self, Parameters(p): Parameters<RunRecipe>) -> CallToolResult {
        let mut body = json!({"recipe": p.recipe});
        if let Some(subproject) = p.subproject {
            body["subproject"] = json!(subproject);
        }
        if let Some(git_ref) = p.git_ref {
            body["ref"] = json!(git_ref);
        }
        respond("run_recipe", self.api.post(&["projects", &p.project, "jobs"], &body).await)
    }

    /// Reads a job: `{"job": {id, project, subproject, recipe, ref, sha, status,
    /// exit_code, reason, recipe_snapshot, log_bytes, findings_count, created_at,
    /// started_at, finished_at}, "log_tail": "<last lines>", "log_tail_truncated"}`.
    /// Status is queued, running, succeeded, failed, timed_out or cancelled.
    /// `log_tail` holds at most 200 lines and 32 KiB.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn get_job(&self, Parameters(p): Parameters<GetJob>) -> CallToolResult {
        let result = self.api.get(&["jobs", &p.job_id], &[]).await.map(|mut view| {
            bounded_tail(&mut view, p.log_tail_lines);
            view
        });
        respond("get_job", result)
    }

    /// Waits until a job reaches an end state (succeeded, failed, timed_out,
    /// cancelled) or `timeout_secs` (1 to 3600, default 600) pass, polling the
    /// service. Sends progress notifications while waiting when the request carries a
    /// progress token. Returns the job as get_job does, plus `finished` (false when
    /// the wait timed out and the job is still going) and `waited_secs`.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn wait_for_job(
        &self,
        Parameters(p): Parameters<WaitForJob>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond("wait_for_job", self.wait_for_job_inner(p, ctx).await)
    }

    /// Reads the end of a job's log: the last `lines` lines (1 to 2000, default
    /// 200), at most `max_bytes` bytes (up to 256 KiB, default 64 KiB), fetched
    /// with a byte range so a huge log is never read whole. Returns `{"job_id",
    /// "status", "log_bytes", "lines", "truncated", "text"}`; `truncated` is true
    /// when earlier output is left out.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn get_job_log(&self, Parameters(p): Parameters<GetJobLog>) -> CallToolResult {
        respond("get_job_log", self.get_job_log_inner(p).await)
    }

    /// Reads the structured findings of a job (lint diagnostics, failed tests, CVEs,
    /// recipe failures), each with id, kind, severity, tool, file, line, column, code,
    /// message, suggested_fix, fingerprint. Filters by kind, minimum severity
    /// (critical > error > warn > info), path prefix and tool; sorted worst first;
    /// at most `limit` (1 to 500, default 100). Returns `{"job_id", "total",
    /// "matched", "returned", "findings"}`, or `new`/`fixed`/`open` lists with
    /// `compare`.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn get_findings(&self, Parameters(p): Parameters<GetFindings>) -> CallToolResult {
        respond("get_findings", self.get_findings_inner(p).await)
    }

    /// Lists jobs newest first, this token's only (all for an admin token),
    /// optionally of one project and in one state; at most `limit` (1 to 500,
    /// default 50). Returns `{"jobs": [...]}` without logs.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn list_jobs(&self, Parameters(p): Parameters<ListJobs>) -> CallToolResult {
        let result = match p.limit.map(|l| check_range("limit", l.into(), 1, 500)) {
            Some(Err(e)) => Err(e),
            _ => {
                let query = [
                    ("project", p.project),
                    ("status", p.status.map(|s| s.as_str().to_owned())),
                    ("limit", p.limit.map(|l| l.to_string())),
                ];
                self.api.get(&["jobs"], &query).await
            }
        };
        respond("list_jobs", result)
    }

    /// Stops a queued or running job. Returns `{"job": {...}}`; fails with a
    /// conflict once the job has already ended.
    #[tool(annotations(
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn cancel_job(&self, Parameters(p): Parameters<JobId>) -> CallToolResult {
        respond("cancel_job", self.api.post(&["jobs", &p.job_id, "cancel"], &json!({})).await)
    }

    /// Asks the service to draft a fix for a finding of a finished job (the most
    /// severe actionable one when no `finding_id` is given): the tool's own fix or an
    /// agent's diff is applied on a fresh branch, the recipe is re-run on it, and a
    /// pull request is opened only when it passes. Never merges. Returns the queued
    /// attempt (follow it with get_patch); fails with patcher_unconfigured when the
    /// service has no forge configured.
    #[tool(annotations(read_only_hint = false, destructive_hint = false, open_world_hint = true))]
    async fn request_patch(&self, Parameters(p): Parameters<RequestPatch>) -> CallToolResult {
        let body = match p.finding_id {
            Some(id) => json!({"finding_id": id}),
            None => json!({}),
        };
        respond("request_patch", self.api.post(&["jobs", &p.job_id, "patches"], &body).await)
    }

    /// Lists this token's patch attempts, optionally of one project and in one state;
    /// at most `limit` (1 to 500), newest first. Returns `{"patches": [...]}`.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn list_patches(&self, Parameters(p): Parameters<ListPatches>) -> CallToolResult {
        let result = match p.limit.map(|l| check_range("limit", l.into(), 1, 500)) {
            Some(Err(e)) => Err(e),
            _ => {
                let query = [
                    ("project", p.project),
                    ("status", p.status),
                    ("limit", p.limit.map(|l| l.to_string())),
                ];
                self.api.get(&["patches"], &query).await
            }
        };
        respond("list_patches", result)
    }

    /// Reads one patch attempt: status, branch, diff, explanation, confidence,
    /// verify job, pull request URL, error; `stage` is `done` once it has ended.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn get_patch(&self, Parameters(p): Parameters<PatchId>) -> CallToolResult {
        respond("get_patch", self.api.get(&["patches", &p.patch_id.to_string()], &[]).await)
    }
}

#[tool_router(router = admin_tools, vis = "pub(crate)")]
impl CraftingMcp {
    /// Admin: lists every token (revoked ones too) with name, is_admin, ip_cidrs,
    /// created_at, revoked_at; never secrets. Returns `{"tokens": [...]}`.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn list_tokens(&self) -> CallToolResult {
        respond("list_tokens", self.api.get(&["admin", "tokens"], &[]).await)
    }

    /// Admin: mints a token. Returns `{"token": {...}, "bearer": "<secret>"}`; the
    /// bearer is shown this once and cannot be read again, so hand it on safely.
    #[tool(annotations(read_only_hint = false, destructive_hint = false, open_world_hint = false))]
    async fn mint_token(&self, Parameters(p): Parameters<MintToken>) -> CallToolResult {
        let result = match serde_json::to_value(&p) {
            Ok(body) => self.api.post(&["admin", "tokens"], &body).await,
            Err(e) => Err(ApiError::invalid("invalid_argument", e.to_string())),
        };
        respond("mint_token", result)
    }

    /// Admin: revokes a token; requests with it fail from then on. Revoking the
    /// token this server uses locks it out. Returns `{"revoked": "<name>"}`.
    #[tool(annotations(
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn revoke_token(&self, Parameters(p): Parameters<TokenName>) -> CallToolResult {
        respond("revoke_token", self.api.delete(&["admin", "tokens", &p.name]).await)
    }

    /// Admin: renders the digest of one day (YYYY-MM-DD) as JSON without sending
    /// anything.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn render_digest(&self, Parameters(p): Parameters<DigestDate>) -> CallToolResult {
        respond("render_digest", self.api.get(&["digests", &p.date], &[]).await)
    }

    /// Admin: builds the digest now, for today or `date`. With `dry_run` (the
    /// default) nothing is mailed; with `dry_run: false` the mails go out, once per
    /// project and day.
    #[tool(annotations(read_only_hint = false, destructive_hint = false, open_world_hint = true))]
    async fn run_digest_now(&self, Parameters(p): Parameters<RunDigestNow>) -> CallToolResult {
        let result = match serde_json::to_value(&p) {
            Ok(body) => self.api.post(&["admin", "digest", "run-now"], &body).await,
            Err(e) => Err(ApiError::invalid("invalid_argument", e.to_string())),
        };
        respond("run_digest_now", result)
    }
}

impl CraftingMcp {
    async fn update_project_inner(&self, p: UpdateProject) -> Result<Value, ApiError> {
        // Read the current settings to fill in what the caller left out.
        let current = self.api.get(&["projects", &p.name], &[]).await?;
        let project = current.get("project").cloned().unwrap_or_default();
        let field = |key: &str| project.get(key).cloned().unwrap_or(Value::Null);
        let git_url = match p.git_url {
            Some(url) => url,
            None => {
                let shown = field("git_url").as_str().unwrap_or_default().to_owned();
                if shown.contains("***@") {
                    return Err(ApiError::invalid(
                        "git_url_required",
                        "The project's git URL carries credentials the service shows redacted; \
                         give git_url in full to update this project.",
                    ));
                }
                shown
            }
        };
        let json_of = |v: Result<Value, serde_json::Error>| {
            v.map_err(|e| ApiError::invalid("invalid_argument", e.to_string()))
        };
        let subprojects = match &p.subprojects {
            Some(list) => json_of(serde_json::to_value(list))?,
            None => field("subprojects"),
        };
        let notify = match &p.notify {
            Some(notify) => json_of(serde_json::to_value(notify))?,
            None => field("notify"),
        };
        let default_branch =
            p.default_branch.map(Value::from).unwrap_or_else(|| field("default_branch"));
        let body = json!({
            "name": p.name,
            "git_url": git_url,
            "default_branch": default_branch,
            "subprojects": subprojects,
            "notify": notify,
        });
        self.api.put(&["projects", &p.name], &body).await
    }

    async fn wait_for_job_inner(
        &self,
        p: WaitForJob,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Value, ApiError> {
        check_range("timeout_secs", p.timeout_secs, 1, MAX_WAIT_SECS)?;
        let started = Instant::now();
        let limit = Duration::from_secs(p.timeout_secs);
        let progress_token = ctx.meta.get_progress_token();
        let mut pause = Duration::from_millis(250);
        loop {
            let mut view = self.api.get(&["jobs", &p.job_id], &[]).await?;
            let status = job_status(&view);
            let waited = started.elapsed();
            let finished = is_terminal(&status);
            if finished || waited >= limit {
                bounded_tail(&mut view, p.log_tail_lines);
                view["finished"] = json!(finished);
                view["waited_secs"] = json!((waited.as_secs_f64() * 10.0).round() / 10.0);
                return Ok(view);
            }

            // Tell the client we are still here, when it asked to hear.
            if let Some(token) = progress_token.clone() {
                let note = ProgressNotificationParam::new(token, waited.as_secs_f64())
                    .with_total(limit.as_secs_f64())
                    .with_message(format!("job {} is {status}", p.job_id));
                if let Err(e) = ctx.peer.notify_progress(note).await {
                    tracing::debug!(error = %e, "progress notification not sent");
                }
            }

            let sleep = pause.min(limit.saturating_sub(waited));
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = ctx.ct.cancelled() => {
                    return Err(ApiError::invalid("cancelled", "The client cancelled the wait."));
                }
            }
            pause = (pause * 2).min(MAX_POLL_INTERVAL);
        }
    }

    async fn get_job_log_inner(&self, p: GetJobLog) -> Result<Value, ApiError> {
        check_range("lines", p.lines as u64, 1, MAX_LOG_LINES as u64)?;
        check_range("max_bytes", p.max_bytes as u64, 1, MAX_LOG_BYTES as u64)?;
        // The job first: it checks the id and ownership, and gives the state.
        let view = self.api.get(&["jobs", &p.job_id], &[]).await?;
        let status = job_status(&view);
        let total = self.api.log_len(&p.job_id).await?;
        let start = total.saturating_sub(p.max_bytes as u64 + LOG_SLACK_BYTES);
        let slice = self.api.log_range(&p.job_id, start, total).await?;
        let cut = tail(&slice.bytes, slice.start > 0, p.lines, p.max_bytes);
        Ok(json!({
            "job_id": p.job_id,
            "status": status,
            "log_bytes": slice.total.max(total),
            "lines": cut.lines,
            "truncated": cut.omitted_before,
            "text": cut.text,
        }))
    }

    async fn get_findings_inner(&self, p: GetFindings) -> Result<Value, ApiError> {
        check_range("limit", p.limit as u64, 1, MAX_FINDINGS as u64)?;
        let query = [("compare", p.compare.clone())];
        let mut answer = self.api.get(&["jobs", &p.job_id, "findings"], &query).await?;
        let filter = Filter {
            kinds: p.kind,
            min_severity: p.min_severity,
            path_prefix: p.path_prefix,
            tool: p.tool,
            include_raw: p.include_raw,
            limit: p.limit,
        };
        let lists: &[&str] =
            if p.compare.is_some() { &["new", "fixed", "open"] } else { &["findings"] };
        let mut out = json!({"job_id": p.job_id});
        if let Some(base) = answer.get("base_job_id") {
            out["base_job_id"] = base.clone();
        }
        for key in lists {
            let all = match answer.get_mut(*key).map(Value::take) {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            };
            let total = all.len();
            let picked = findings::select(all, &filter);
            let (matched, returned) = (picked.matched, picked.findings.len());
            out[*key] = Value::Array(picked.findings);
            let counts = json!({"total": total, "matched": matched, "returned": returned});
            if p.compare.is_some() {
                out[format!("{key}_counts")] = counts;
            } else if let Value::Object(map) = counts {
                out.as_object_mut().expect("built as an object").extend(map);
            }
        }
        Ok(out)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for CraftingMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new(SERVER_NAME, env!("CARGO_PKG_VERSION"))
                    .with_title("crafting-table")
                    .with_description(
                        "Build, test, lint and audit git repositories on a crafting-table service",
                    ),
            )
            .with_instructions(
                "Tools of a crafting-table service, which runs named recipes (shell commands) \
                 of registered git repositories and turns their output into findings. Usual \
                 flow: list_projects or register_project; run_recipe (returns a job_id); \
                 wait_for_job; then get_findings and get_job_log. Failed calls return \
                 isError with the service's message and a code.",
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn server(access: Access) -> CraftingMcp {
        let config =
            Config::from_lookup(|name| (name == crate::config::TOKEN_VAR).then(|| "t".to_owned()))
                .unwrap();
        CraftingMcp::new(Api::new(&config).unwrap(), access)
    }

    #[test]
    fn admin_tools_only_for_admins() {
        let user = server(Access::User).tool_names();
        let admin = server(Access::Admin).tool_names();
        for name in ["list_tokens", "mint_token", "revoke_token", "render_digest", "run_digest_now"]
        {
            assert!(!user.contains(&name.to_owned()), "{name}");
            assert!(admin.contains(&name.to_owned()), "{name}");
        }
        assert!(user.contains(&"wait_for_job".to_owned()));
        assert_eq!(admin.len(), user.len() + 5);
    }

    #[test]
    fn every_tool_says_what_it_does_and_delete_is_destructive() {
        let mcp = server(Access::Admin);
        for t in mcp.tool_router.list_all() {
            let description = t.description.as_deref().unwrap_or_default();
            assert!(description.len() > 40, "{} needs a description", t.name);
            assert!(t.annotations.is_some(), "{} needs annotations", t.name);
        }
        let delete = mcp.tool_router.get("delete_project").unwrap();
        let hints = delete.annotations.as_ref().unwrap();
        assert_eq!(hints.destructive_hint, Some(true));
        assert_eq!(hints.read_only_hint, Some(false));
    }

    #[test]
    fn tails_in_job_views_are_bounded() {
        let long: String = (0..5000).map(|i| format!("{i}\n")).collect();
        let mut view = json!({"job": {"status": "failed"}, "log_tail": long});
        bounded_tail(&mut view, 10_000);
        let text = view["log_tail"].as_str().unwrap();
        assert_eq!(text.lines().count(), MAX_TAIL_LINES);
        assert!(text.ends_with("4999"));
        assert_eq!(view["log_tail_truncated"], json!(true));
    }
}
