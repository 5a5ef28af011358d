//! Tool inputs. Each struct is one tool's arguments; the JSON schema a client
//! sees is derived from it, doc comments included, and unknown fields are
//! refused so a misspelt argument is reported instead of ignored.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Longest wait [`WaitForJob`] accepts, in seconds.
pub const MAX_WAIT_SECS: u64 = 3600;
/// Most log lines [`GetJobLog`] returns.
pub const MAX_LOG_LINES: usize = 2000;
/// Most log bytes [`GetJobLog`] returns.
pub const MAX_LOG_BYTES: usize = 256 * 1024;
/// Most `log_tail` lines `get_job` and `wait_for_job` return.
pub const MAX_TAIL_LINES: usize = 200;
/// Most `log_tail` bytes `get_job` and `wait_for_job` return.
pub const MAX_TAIL_BYTES: usize = 32 * 1024;
/// Most findings [`GetFindings`] returns.
pub const MAX_FINDINGS: usize = 500;

/// Kind of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A diagnostic from a linter, type checker or compiler.
    Lint,
    /// A known vulnerability in a dependency.
    Cve,
    /// A failed test.
    TestFail,
    /// The recipe failed and no parser recognised why.
    RecipeFail,
}

impl FindingKind {
    /// The API's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Lint => "lint",
            FindingKind::Cve => "cve",
            FindingKind::TestFail => "test_fail",
            FindingKind::RecipeFail => "recipe_fail",
        }
    }
}

/// Severity of a finding, from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Notes and hints.
    Info,
    /// Warnings.
    Warn,
    /// Errors, failed tests, failed recipes.
    Error,
    /// Vulnerabilities scored 9.0 or more.
    Critical,
}

impl Severity {
    /// The API's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

/// State of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for a worker.
    Queued,
    /// Checking out or running.
    Running,
    /// Exited 0.
    Succeeded,
    /// Exited non-zero or could not run.
    Failed,
    /// Stopped at its timeout.
    TimedOut,
    /// Cancelled.
    Cancelled,
}

impl JobStatus {
    /// The API's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::TimedOut => "timed_out",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

/// True for the states a job never leaves.
pub fn is_terminal(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "timed_out" | "cancelled")
}

/// A project named by its name.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectName {
    /// Project name, e.g. `billing-api`.
    pub name: String,
}

/// One folder of the repository with its language and recipes.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubprojectSpec {
    /// Folder relative to the repository root; `.` for the root.
    #[serde(default = "root_path")]
    pub path: String,
    /// Language; picks the findings parser: `rust`, `python`, `go`, `typescript`,
    /// `javascript`, or anything else for the generic one.
    pub language: String,
    /// Recipe name -> shell command run with `/bin/sh -c` in the subproject folder,
    /// e.g. `{"test": "cargo test", "lint": "cargo clippy --message-format=json"}`.
    pub recipes: BTreeMap<String, String>,
    /// Timeout of this subproject's recipes in seconds; the service default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// `false` runs this subproject's recipes without network (in the bwrap
    /// sandbox only); the service default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<bool>,
}

fn root_path() -> String {
    ".".to_owned()
}

/// Digest recipients and automatic patching.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifySpec {
    /// Addresses that receive the daily digest; none leaves the project out of it.
    #[serde(default)]
    pub email: Vec<String>,
    /// Digest events: `audit_pass`, `audit_fail`, `test_fail`, `lint_warn`, `cve_found`,
    /// `patch_drafted`, `nightly_summary`; empty means the service default.
    #[serde(default)]
    pub on: Vec<String>,
    /// Draft a patch after every job with an actionable finding.
    #[serde(default)]
    pub auto_patch: bool,
}

/// Arguments of `register_project`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterProject {
    /// Unique name: letters, digits, `.`, `_`, `-`, at most 64, starting with a letter or digit.
    pub name: String,
    /// Repository to fetch: an https/http/git URL, or a local path under a root the
    /// service allows.
    pub git_url: String,
    /// Branch built when a job names no ref; detected from the remote when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_branch: Option<String>,
    /// At least one subproject.
    pub subprojects: Vec<SubprojectSpec>,
    /// Digest and patch settings.
    #[serde(default)]
    pub notify: NotifySpec,
}

/// Arguments of `update_project`: fields left out keep their current value.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProject {
    /// Name of the project to change (projects cannot be renamed).
    pub name: String,
    /// New repository URL. Required when the current URL carries credentials,
    /// since the service only shows it redacted.
    #[serde(default)]
    pub git_url: Option<String>,
    /// New default branch.
    #[serde(default)]
    pub default_branch: Option<String>,
    /// New list of subprojects, replacing the current one whole.
    #[serde(default)]
    pub subprojects: Option<Vec<SubprojectSpec>>,
    /// New digest and patch settings, replacing the current ones whole.
    #[serde(default)]
    pub notify: Option<NotifySpec>,
}

/// Arguments of `run_recipe`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRecipe {
    /// Project name.
    pub project: String,
    /// Recipe name, e.g. `test`.
    pub recipe: String,
    /// Subproject path; may be left out when the project has only one.
    #[serde(default)]
    pub subproject: Option<String>,
    /// Branch, tag or commit to run at; the default branch when absent.
    #[serde(default, rename = "ref")]
    pub git_ref: Option<String>,
}

/// A job named by its id.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobId {
    /// Job id, as returned by `run_recipe` or `list_jobs`.
    pub job_id: String,
}

/// Arguments of `get_job`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetJob {
    /// Job id.
    pub job_id: String,
    /// Lines of the log's end to include (0 to 200, default 50; at most 32 KiB).
    #[serde(default = "default_tail_lines")]
    #[schemars(range(min = 0, max = 200))]
    pub log_tail_lines: usize,
}

fn default_tail_lines() -> usize {
    50
}

/// Arguments of `wait_for_job`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitForJob {
    /// Job id.
    pub job_id: String,
    /// Longest wait in seconds (1 to 3600, default 600). The answer comes sooner when
    /// the job ends. Keep it below your client's own request timeout.
    #[serde(default = "default_wait_secs")]
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_secs: u64,
    /// Lines of the log's end to include (0 to 200, default 50; at most 32 KiB).
    #[serde(default = "default_tail_lines")]
    #[schemars(range(min = 0, max = 200))]
    pub log_tail_lines: usize,
}

fn default_wait_secs() -> u64 {
    600
}

/// Arguments of `get_job_log`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetJobLog {
    /// Job id.
    pub job_id: String,
    /// How many lines from the end (1 to 2000, default 200).
    #[serde(default = "default_log_lines")]
    #[schemars(range(min = 1, max = 2000))]
    pub lines: usize,
    /// Most bytes to return (1 to 262144, default 65536); the line count stops
    /// earlier when lines are long.
    #[serde(default = "default_log_bytes")]
    #[schemars(range(min = 1, max = 262144))]
    pub max_bytes: usize,
}

fn default_log_lines() -> usize {
    200
}

fn default_log_bytes() -> usize {
    64 * 1024
}

/// Arguments of `get_findings`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetFindings {
    /// Job id.
    pub job_id: String,
    /// Only these kinds; all when absent or empty.
    #[serde(default)]
    pub kind: Vec<FindingKind>,
    /// Only findings at least this severe, on the scale critical > error > warn > info.
    #[serde(default)]
    pub min_severity: Option<Severity>,
    /// Only findings in files whose repository path starts with this, e.g. `src/`.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Only findings reported by this tool, e.g. `clippy`.
    #[serde(default)]
    pub tool: Option<String>,
    /// Most findings to return (1 to 500, default 100), worst first.
    #[serde(default = "default_findings_limit")]
    #[schemars(range(min = 1, max = 500))]
    pub limit: usize,
    /// Include each finding's `raw_json` (the tool's own record; can be large).
    #[serde(default)]
    pub include_raw: bool,
    /// Compare against `previous` (the last finished job of the same project,
    /// subproject and recipe) or a job id: the answer then has `new`, `fixed` and
    /// `open` lists, each filtered and limited the same way.
    #[serde(default)]
    pub compare: Option<String>,
}

fn default_findings_limit() -> usize {
    100
}

/// Arguments of `list_jobs`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListJobs {
    /// Only this project's jobs.
    #[serde(default)]
    pub project: Option<String>,
    /// Only jobs in this state.
    #[serde(default)]
    pub status: Option<JobStatus>,
    /// Most jobs to return (1 to 500; the service's default, 50, when absent).
    #[serde(default)]
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u32>,
}

/// Arguments of `request_patch`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestPatch {
    /// The job whose finding should be fixed.
    pub job_id: String,
    /// The finding to fix (its `id` from `get_findings`); the service picks the most
    /// severe actionable one when absent.
    #[serde(default)]
    pub finding_id: Option<u64>,
}

/// Arguments of `list_patches`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListPatches {
    /// Only this project's attempts.
    #[serde(default)]
    pub project: Option<String>,
    /// Only attempts in this state, e.g. `pr_opened`, `apply_failed`, `verify_failed`.
    #[serde(default)]
    pub status: Option<String>,
    /// Most attempts to return (1 to 500).
    #[serde(default)]
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u32>,
}

/// A patch attempt named by its id.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchId {
    /// Patch attempt id.
    pub patch_id: u64,
}

/// Arguments of `mint_token`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MintToken {
    /// Unique token name (same rules as project names).
    pub name: String,
    /// Give it admin rights.
    #[serde(default)]
    pub is_admin: bool,
    /// Networks it may be used from, in CIDR notation; empty means any the service allows.
    #[serde(default)]
    pub ip_cidrs: Vec<String>,
}

/// A token named by its name.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenName {
    /// Token name.
    pub name: String,
}

/// Arguments of `render_digest`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DigestDate {
    /// Day to render, `YYYY-MM-DD`.
    pub date: String,
}

/// Arguments of `run_digest_now`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunDigestNow {
    /// Build the digest without sending mail (default true; set false to send).
    #[serde(default = "yes")]
    pub dry_run: bool,
    /// Day to build, `YYYY-MM-DD`; today when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
}

fn yes() -> bool {
    true
}
