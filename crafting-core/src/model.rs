//! Records the engine stores and returns: tokens, projects, jobs, findings.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

pub use crafting_parsers::{Finding, Kind, Severity};

/// Who is asking. Front ends build it from an authenticated token; an
/// embedding program can act as [`Caller::admin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name; projects are owned by it.
    pub token: String,
    /// Admins see and manage everything.
    pub is_admin: bool,
}

impl Caller {
    /// A caller with admin rights under the given token name.
    pub fn admin(token: impl Into<String>) -> Self {
        Caller { token: token.into(), is_admin: true }
    }

    /// A caller without admin rights.
    pub fn user(token: impl Into<String>) -> Self {
        Caller { token: token.into(), is_admin: false }
    }
}

/// A bearer token as listed (never with its secret).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Token {
    /// Unique name.
    pub name: String,
    /// Whether it may use admin routes and see every project.
    pub is_admin: bool,
    /// Networks it may be used from, on top of the global allowlist; empty means any.
    pub ip_cidrs: Vec<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 revocation time, when revoked.
    pub revoked_at: Option<String>,
}

/// A request to mint a token.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Unique name, same rules as project names.
    pub name: String,
    /// Admin scope.
    #[serde(default)]
    pub is_admin: bool,
    /// Networks it may be used from (CIDR notation); empty means any allowed by the global list.
    #[serde(default)]
    pub ip_cidrs: Vec<String>,
}

/// One folder of a repository with its language and its recipes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Subproject {
    /// Folder relative to the repository root; `.` for the root.
    pub path: String,
    /// Language, which picks the findings parser: `rust`, `python`, `go`,
    /// `typescript`, `javascript`, or anything else for the generic fallback.
    pub language: String,
    /// Recipe name -> shell command, e.g. `{"lint": "cargo clippy --message-format=json"}`.
    pub recipes: BTreeMap<String, String>,
    /// Timeout for this subproject's recipes; the engine default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// `false` takes the network away from this subproject's recipes (only
    /// in `bwrap` isolation); absent means the engine default
    /// (`CRAFTING_RECIPE_NETWORK`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<bool>,
}

/// Who hears about a project's jobs, and whether fixes are drafted automatically.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// Recipients of the daily digest; one address or a list.
    #[serde(default, deserialize_with = "one_or_many")]
    pub email: Vec<String>,
    /// Digest events; empty means `audit_fail, cve_found, patch_drafted`.
    #[serde(default)]
    pub on: Vec<String>,
    /// Draft a patch after every job with an actionable finding.
    #[serde(default)]
    pub auto_patch: bool,
}

/// The digest events a project may subscribe to.
pub const NOTIFY_EVENTS: &[&str] = &[
    "audit_pass",
    "audit_fail",
    "test_fail",
    "lint_warn",
    "cve_found",
    "patch_drafted",
    "nightly_summary",
];

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

/// What a client sends to register or update a project.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProjectSpec {
    /// Unique name; becomes a directory name.
    pub name: String,
    /// Where to fetch from: https/http/git URL, or a local path under an allowed root.
    pub git_url: String,
    /// Branch built when a job names no ref; detected from the remote when absent.
    #[serde(default)]
    pub default_branch: Option<String>,
    /// At least one subproject.
    pub subprojects: Vec<Subproject>,
    /// Digest and patch settings.
    #[serde(default)]
    pub notify: Notify,
}

/// A registered project as returned to clients.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Project {
    /// Unique name.
    pub name: String,
    /// Name of the token that registered it.
    pub owner: String,
    /// The git URL with any credentials redacted.
    pub git_url: String,
    /// Branch built when a job names no ref, once known.
    pub default_branch: Option<String>,
    /// Languages of its subprojects, sorted and unique.
    pub languages: Vec<String>,
    /// Its subprojects.
    pub subprojects: Vec<Subproject>,
    /// Digest and patch settings.
    pub notify: Notify,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last update.
    pub updated_at: String,
}

/// A job's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for a free worker.
    Queued,
    /// Materialising its worktree or running its recipe.
    Running,
    /// The recipe exited 0.
    Succeeded,
    /// The recipe exited non-zero, or the job could not run.
    Failed,
    /// The recipe ran past its timeout and was stopped.
    TimedOut,
    /// Someone cancelled it.
    Cancelled,
}

impl JobStatus {
    /// The snake_case name stored in the ledger.
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

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<JobStatus> {
        Some(match s {
            "queued" => JobStatus::Queued,
            "running" => JobStatus::Running,
            "succeeded" => JobStatus::Succeeded,
            "failed" => JobStatus::Failed,
            "timed_out" => JobStatus::TimedOut,
            "cancelled" => JobStatus::Cancelled,
            _ => return None,
        })
    }

    /// True for the four end states.
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobStatus::Queued | JobStatus::Running)
    }
}

/// What a client sends to run a recipe.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// Recipe name of the subproject.
    pub recipe: String,
    /// Subproject path; may be left out when the project has only one.
    #[serde(default)]
    pub subproject: Option<String>,
    /// Branch, tag or commit id; the default branch when absent.
    #[serde(default, rename = "ref")]
    pub git_ref: Option<String>,
}

/// The recipe exactly as a job ran it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecipeSnapshot {
    /// Recipe name.
    pub recipe: String,
    /// The shell command.
    pub command: String,
    /// Subproject path.
    pub subproject: String,
    /// Subproject language.
    pub language: String,
    /// Timeout in seconds.
    pub timeout_secs: u64,
    /// The subproject's network setting when the job was queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<bool>,
    /// Set only on a patch attempt's verify job for a lint finding: the
    /// files the fix changed, relative to the subproject, handed to the
    /// recipe as `CRAFTING_CHANGED_FILES` (space-separated) so that a recipe
    /// written for it lints only those (fast verify).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_files: Option<Vec<String>>,
}

/// A job as stored and returned.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Job {
    /// Time-sortable id (UUIDv7 in simple form).
    pub id: String,
    /// Project name.
    pub project: String,
    /// Subproject path.
    pub subproject: String,
    /// Recipe name.
    pub recipe: String,
    /// The ref asked for, when one was.
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// The commit it ran at, once resolved.
    pub sha: Option<String>,
    /// Lifecycle state.
    pub status: JobStatus,
    /// The recipe's exit code; -1 when it was killed or never ran to completion.
    pub exit_code: Option<i32>,
    /// Why it ended the way it did, when that is not just the exit code.
    pub reason: Option<String>,
    /// The recipe as it ran.
    pub recipe_snapshot: RecipeSnapshot,
    /// Bytes in the log file.
    pub log_bytes: u64,
    /// Number of findings parsed from the log.
    pub findings_count: u64,
    /// RFC 3339 times.
    pub created_at: String,
    /// When it started running.
    pub started_at: Option<String>,
    /// When it reached its end state.
    pub finished_at: Option<String>,
}

impl Job {
    /// A fresh time-sortable job id.
    pub fn new_id() -> String {
        uuid::Uuid::now_v7().simple().to_string()
    }

    /// A job waiting to run `snapshot` at `git_ref` (the default branch when none).
    pub fn queued(
        id: String,
        project: &str,
        snapshot: RecipeSnapshot,
        git_ref: Option<String>,
    ) -> Job {
        Job {
            id,
            project: project.to_owned(),
            subproject: snapshot.subproject.clone(),
            recipe: snapshot.recipe.clone(),
            git_ref,
            sha: None,
            status: JobStatus::Queued,
            exit_code: None,
            reason: None,
            recipe_snapshot: snapshot,
            log_bytes: 0,
            findings_count: 0,
            created_at: crate::ledger::now(),
            started_at: None,
            finished_at: None,
        }
    }

    /// Where its log goes, relative to the logs folder.
    pub fn log_path(&self) -> String {
        format!("{}/{}.log", self.project, self.id)
    }
}

/// Filters for listing jobs.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only this project's jobs.
    pub project: Option<String>,
    /// Only jobs in this state.
    pub status: Option<JobStatus>,
    /// At most this many (clamped to 1..=500; 50 when absent).
    pub limit: Option<u32>,
}

/// A stored finding.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FindingRecord {
    /// Ledger id.
    pub id: i64,
    /// The job it was found in.
    pub job_id: String,
    /// The parsed finding.
    #[serde(flatten)]
    pub finding: Finding,
    /// Line-shift-proof identity used to compare jobs.
    pub identity: String,
    /// RFC 3339 time it was stored.
    pub created_at: String,
}

/// Runner figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunnerStats {
    /// Worker slots.
    pub workers: usize,
    /// Jobs running now.
    pub running: usize,
    /// Jobs waiting for a slot.
    pub queued: usize,
    /// Jobs finished since start.
    pub finished: u64,
    /// Most git operations ever seen at once on a single project (1 when serialised).
    pub max_git_ops_per_project: usize,
}

/// Where a patch attempt stands. An attempt is `drafted` from the moment it
/// is queued until it reaches one of the four end states; its
/// [`PatchStage`] says how far it has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatchStatus {
    /// In progress: queued, drafting, applying, verifying or delivering.
    Drafted,
    /// The diff was refused or did not apply to the job's commit.
    ApplyFailed,
    /// The recipe still failed, the finding was still there, or the fix
    /// brought new findings.
    VerifyFailed,
    /// The branch was pushed and a pull request opened.
    PrOpened,
    /// The attempt could not be carried out (agent, forge or engine failure).
    Error,
}

impl PatchStatus {
    /// The snake_case name stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            PatchStatus::Drafted => "drafted",
            PatchStatus::ApplyFailed => "apply_failed",
            PatchStatus::VerifyFailed => "verify_failed",
            PatchStatus::PrOpened => "pr_opened",
            PatchStatus::Error => "error",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<PatchStatus> {
        Some(match s {
            "drafted" => PatchStatus::Drafted,
            "apply_failed" => PatchStatus::ApplyFailed,
            "verify_failed" => PatchStatus::VerifyFailed,
            "pr_opened" => PatchStatus::PrOpened,
            "error" => PatchStatus::Error,
            _ => return None,
        })
    }
}

/// How far an attempt has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatchStage {
    /// Waiting for the project's previous attempt to end.
    Queued,
    /// Asking the tool's fix or the agent for a diff.
    Drafting,
    /// Checking the diff and applying it to a fresh worktree.
    Applying,
    /// The verify job is running.
    Verifying,
    /// Pushing the branch and opening the pull request.
    Delivering,
    /// The attempt is over; its status is final.
    Done,
}

impl PatchStage {
    /// The snake_case name stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            PatchStage::Queued => "queued",
            PatchStage::Drafting => "drafting",
            PatchStage::Applying => "applying",
            PatchStage::Verifying => "verifying",
            PatchStage::Delivering => "delivering",
            PatchStage::Done => "done",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<PatchStage> {
        Some(match s {
            "queued" => PatchStage::Queued,
            "drafting" => PatchStage::Drafting,
            "applying" => PatchStage::Applying,
            "verifying" => PatchStage::Verifying,
            "delivering" => PatchStage::Delivering,
            "done" => PatchStage::Done,
            _ => return None,
        })
    }
}

/// The finding a patch attempt is about, as shown with the attempt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PatchTarget {
    /// `lint` or `cve`.
    pub kind: Kind,
    /// Tool that reported it.
    pub tool: String,
    /// Rule or advisory id.
    pub code: String,
    /// File relative to the repository root, when known.
    pub file: Option<String>,
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// The tool's message.
    pub message: String,
    /// Line-shift-proof identity (see [`FindingRecord::identity`]).
    pub identity: String,
}

/// One attempt at fixing one finding.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PatchAttempt {
    /// Ledger id.
    pub id: i64,
    /// The job whose finding is being fixed.
    pub job_id: String,
    /// That job's project.
    pub project: String,
    /// The finding (ledger id) being fixed.
    pub finding_id: i64,
    /// What the finding is.
    pub finding: Option<PatchTarget>,
    /// 1 for the first attempt at this finding's identity in its recipe's history.
    pub attempt_number: u32,
    /// Where it stands.
    pub status: PatchStatus,
    /// How far it got.
    pub stage: PatchStage,
    /// Where the diff came from: `tool:<name>` or `agent:<kind>`.
    pub source: Option<String>,
    /// The branch the fix was committed on.
    pub branch: Option<String>,
    /// The unified diff.
    pub diff: Option<String>,
    /// Why the diff fixes the finding.
    pub explanation: Option<String>,
    /// The agent's confidence, 0 to 1 (1 for a tool's own fix).
    pub confidence: Option<f64>,
    /// The job that re-ran the recipe on the patched commit.
    pub verify_job_id: Option<String>,
    /// The pull request, once opened.
    pub pr_url: Option<String>,
    /// Why it failed, for the failed states.
    pub error: Option<String>,
    /// RFC 3339 times.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// Filters for listing patch attempts.
#[derive(Debug, Clone, Default)]
pub struct PatchFilter {
    /// Only this project's attempts.
    pub project: Option<String>,
    /// Only attempts in this state.
    pub status: Option<PatchStatus>,
    /// At most this many (clamped to 1..=500; 50 when absent).
    pub limit: Option<u32>,
}
