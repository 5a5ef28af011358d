//! What a digest says: the events of each job, the records served as JSON,
//! and the subject, plain-text and HTML bodies built from them.
//!
//! # Events
//!
//! A finished job raises these events:
//!
//! | event | when |
//! |---|---|
//! | `audit_pass` | an audit recipe (named `audit`, or `audit-*`, `audit_*`, `audit.*`) succeeded |
//! | `audit_fail` | an audit recipe failed or timed out |
//! | `test_fail` | the job has a `test_fail` finding, or a test recipe (`test`, `test-*`, ...) failed or timed out |
//! | `lint_warn` | the job has a `lint` finding of severity `warn` or worse |
//! | `cve_found` | the job has a `cve` finding |
//! | `nightly_summary` | every job (cancelled ones included) |
//!
//! and `patch_drafted` is raised by a patch attempt created in the window
//! whose status is `drafted` or `pr_opened`. A project subscribes with
//! `notify.on` (empty means `audit_fail`, `cve_found`, `patch_drafted`); its
//! mail lists the jobs that raised at least one subscribed event, and the
//! patches when it subscribes to `patch_drafted`. A project whose window
//! raised no subscribed event gets no mail that day.
//!
//! # Changes
//!
//! Every mail leads with what changed since the project's previous digest:
//! for each subproject and recipe with a job listed in the mail, the newest
//! job of the window (succeeded, failed or timed out) is compared on finding
//! identity with the newest one that ended before the end of the window of
//! the project's previous sent digest (or before this window when there was
//! none). Findings only in the new job are *new*, only in the old one
//! *fixed*, in both *still open*.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::body;
use crate::ledger::{DigestRun, DraftedPatch};
use crate::model::{FindingRecord, Job, JobStatus, Kind, Notify, Project, Severity};

/// Longest finding message carried into a digest, in characters.
const MAX_MESSAGE_CHARS: usize = 2000;
/// Findings shown per job.
const TOP_FINDINGS: usize = 10;
/// New or fixed findings listed in the changes section (the counts are exact).
const MAX_CHANGES_LISTED: usize = 100;

/// A digest event a project can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// An audit recipe succeeded.
    AuditPass,
    /// An audit recipe failed or timed out.
    AuditFail,
    /// A test failed.
    TestFail,
    /// A lint finding of severity warn or worse.
    LintWarn,
    /// A vulnerable dependency.
    CveFound,
    /// A patch was drafted or its pull request opened.
    PatchDrafted,
    /// Every job.
    NightlySummary,
}

impl Event {
    /// Every event, in the order of [`crate::model::NOTIFY_EVENTS`].
    pub const ALL: [Event; 7] = [
        Event::AuditPass,
        Event::AuditFail,
        Event::TestFail,
        Event::LintWarn,
        Event::CveFound,
        Event::PatchDrafted,
        Event::NightlySummary,
    ];

    /// What an empty `notify.on` subscribes to.
    pub const DEFAULT: [Event; 3] = [Event::AuditFail, Event::CveFound, Event::PatchDrafted];

    /// The snake_case name used in `notify.on`.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::AuditPass => "audit_pass",
            Event::AuditFail => "audit_fail",
            Event::TestFail => "test_fail",
            Event::LintWarn => "lint_warn",
            Event::CveFound => "cve_found",
            Event::PatchDrafted => "patch_drafted",
            Event::NightlySummary => "nightly_summary",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// The events a project subscribes to; unknown names are ignored (the
/// handle refuses them when a project is saved).
pub fn subscribed(notify: &Notify) -> BTreeSet<Event> {
    if notify.on.is_empty() {
        return Event::DEFAULT.into_iter().collect();
    }
    notify.on.iter().filter_map(|s| Event::parse(s)).collect()
}

/// True for `name` and `name` followed by `-`, `_`, `.` or `:` and more.
fn recipe_is(recipe: &str, name: &str) -> bool {
    recipe
        .strip_prefix(name)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', '_', '.', ':']))
}

/// The events a finished job raises (see the module docs).
pub fn job_events(job: &Job, findings: &[FindingRecord]) -> BTreeSet<Event> {
    let mut ev = BTreeSet::from([Event::NightlySummary]);
    let failed = matches!(job.status, JobStatus::Failed | JobStatus::TimedOut);
    if recipe_is(&job.recipe, "audit") {
        match job.status {
            JobStatus::Succeeded => drop(ev.insert(Event::AuditPass)),
            _ if failed => drop(ev.insert(Event::AuditFail)),
            _ => {}
        }
    }
    if failed && recipe_is(&job.recipe, "test") {
        ev.insert(Event::TestFail);
    }
    for f in findings.iter().map(|f| &f.finding) {
        match f.kind {
            Kind::TestFail => drop(ev.insert(Event::TestFail)),
            Kind::Lint if f.severity >= Severity::Warn => drop(ev.insert(Event::LintWarn)),
            Kind::Cve => drop(ev.insert(Event::CveFound)),
            _ => {}
        }
    }
    ev
}

/// Finding text made safe to carry: line endings become `\n`, other control
/// characters but tab are dropped, and it is cut at 2000 characters.
pub fn clean_text(s: &str) -> String {
    let unified = s.replace("\r\n", "\n").replace('\r', "\n");
    let mut out: String = unified
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .take(MAX_MESSAGE_CHARS)
        .collect();
    if unified.chars().count() > MAX_MESSAGE_CHARS {
        out.push_str(" [...]");
    }
    out
}

/// A finding as a digest shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FindingEntry {
    /// Ledger id.
    pub id: i64,
    /// Its job.
    pub job_id: String,
    /// Subproject of the job.
    pub subproject: String,
    /// Recipe of the job.
    pub recipe: String,
    /// `lint`, `cve`, `test_fail` or `recipe_fail`.
    pub kind: Kind,
    /// Severity.
    pub severity: Severity,
    /// File relative to the repository root.
    pub file: Option<String>,
    /// 1-based line.
    pub line: Option<u32>,
    /// Rule, advisory id, test name or `exit_<n>`.
    pub code: String,
    /// The message, cleaned (see [`clean_text`]).
    pub message: String,
    /// The tool's suggested fix.
    pub suggested_fix: Option<String>,
    /// Identity the changes are computed on.
    pub identity: String,
}

impl FindingEntry {
    fn new(f: &FindingRecord, job: &Job) -> FindingEntry {
        FindingEntry {
            id: f.id,
            job_id: f.job_id.clone(),
            subproject: job.subproject.clone(),
            recipe: job.recipe.clone(),
            kind: f.finding.kind,
            severity: f.finding.severity,
            file: f.finding.file.as_deref().map(clean_text),
            line: f.finding.line,
            code: clean_text(&f.finding.code),
            message: clean_text(&f.finding.message),
            suggested_fix: f.finding.suggested_fix.as_deref().map(clean_text),
            identity: f.identity.clone(),
        }
    }

    /// `file:line`, `file`, or nothing.
    pub fn location(&self) -> Option<String> {
        match (&self.file, self.line) {
            (Some(f), Some(l)) => Some(format!("{f}:{l}")),
            (Some(f), None) => Some(f.clone()),
            _ => None,
        }
    }
}

/// A vulnerable dependency reported by a job.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Advisory {
    /// Advisory id (`RUSTSEC-...`, `GHSA-...`, `CVE-...`).
    pub id: String,
    /// Severity.
    pub severity: Severity,
    /// The lock or manifest file it was found in.
    pub file: Option<String>,
    /// The suggested fix, e.g. `bump foo to 1.2.3`.
    pub suggested_fix: Option<String>,
}

/// A job as a digest lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JobEntry {
    /// Job id.
    pub id: String,
    /// Subproject path.
    pub subproject: String,
    /// Recipe name.
    pub recipe: String,
    /// End state.
    pub status: JobStatus,
    /// Exit code.
    pub exit_code: Option<i32>,
    /// Why it ended so, when not plain.
    pub reason: Option<String>,
    /// Seconds from start to end, when it started.
    pub duration_secs: Option<f64>,
    /// When it ended.
    pub finished_at: Option<String>,
    /// Every event it raised, subscribed or not.
    pub events: Vec<Event>,
    /// Findings per kind.
    pub findings_by_kind: BTreeMap<String, usize>,
    /// The most severe findings, at most ten.
    pub top_findings: Vec<FindingEntry>,
    /// Its `cve` findings.
    pub advisories: Vec<Advisory>,
    /// `<public url>/jobs/<id>`.
    pub url: String,
    /// `<public url>/jobs/<id>/findings`.
    pub findings_url: String,
}

/// A drafted patch as a digest lists it.
#[derive(Debug, Clone, Serialize)]
pub struct PatchEntry {
    /// The attempt.
    #[serde(flatten)]
    pub patch: DraftedPatch,
    /// `<public url>/patches/<id>`.
    pub url: String,
}

/// One compared lineage (subproject and recipe).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Lineage {
    /// Subproject path.
    pub subproject: String,
    /// Recipe name.
    pub recipe: String,
    /// The newest job in the window.
    pub job_id: String,
    /// What it was compared with, when there was an earlier job.
    pub base_job_id: Option<String>,
}

/// What changed since the previous digest (see the module docs).
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Changes {
    /// Date of the previous sent digest, when there was one.
    pub since_digest: Option<String>,
    /// Jobs ending before this were the base of the comparison.
    pub base_cutoff: String,
    /// The lineages compared.
    pub compared: Vec<Lineage>,
    /// Number of new findings.
    pub new_count: usize,
    /// Number of fixed findings.
    pub fixed_count: usize,
    /// Number of findings present before and still present.
    pub still_open: usize,
    /// New findings (at most 100).
    pub new: Vec<FindingEntry>,
    /// Fixed findings (at most 100).
    pub fixed: Vec<FindingEntry>,
}

/// The figures of a project's digest.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Counts {
    /// Jobs listed.
    pub jobs: usize,
    /// Listed jobs that failed or timed out.
    pub failed: usize,
    /// New `cve` findings.
    pub new_cves: usize,
    /// New findings of other kinds.
    pub new_other: usize,
    /// Fixed findings.
    pub fixed: usize,
    /// Findings still open.
    pub still_open: usize,
    /// Patches listed.
    pub patches: usize,
}

/// Whether a project gets a mail for the date.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// It has recipients and a subscribed event happened.
    Send,
    /// `notify.email` is empty.
    NoRecipients,
    /// No subscribed event happened in the window.
    NothingToReport,
}

/// One project's digest of one date.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectDigest {
    /// Project name.
    pub project: String,
    /// `notify.email`.
    pub recipients: Vec<String>,
    /// The events it subscribes to (defaults applied).
    pub subscribed: Vec<Event>,
    /// Subscribed events that happened.
    pub events: Vec<Event>,
    /// Whether a mail goes out.
    pub verdict: Verdict,
    /// The delivery record, once a (non-dry) run claimed this date.
    pub delivery: Option<DigestRun>,
    /// What changed since the previous digest.
    pub changes: Changes,
    /// Figures for the subject.
    pub counts: Counts,
    /// Jobs listed (those raising a subscribed event), in the order they ended.
    pub jobs: Vec<JobEntry>,
    /// Patches listed (when `patch_drafted` is subscribed).
    pub patches: Vec<PatchEntry>,
    /// `<public url>/projects/<name>`.
    pub project_url: String,
    /// The mail's subject.
    pub subject: String,
    /// The mail's plain-text body.
    pub text: String,
    /// The mail's HTML body.
    pub html: String,
}

/// The digest of one date for every project: what `GET /digests/{date}` serves.
#[derive(Debug, Clone, Serialize)]
pub struct DayDigest {
    /// The date, in the configured time zone.
    pub date: NaiveDate,
    /// The configured time zone.
    pub time_zone: String,
    /// Jobs that ended at or after this instant are covered (RFC 3339, UTC).
    pub window_start: String,
    /// ... and before this one: the digest's fire time.
    pub window_end: String,
    /// Every project, by name.
    pub projects: Vec<ProjectDigest>,
}

/// Where and when a digest is rendered.
#[derive(Debug, Clone)]
pub struct RenderContext {
    /// The digest date.
    pub date: NaiveDate,
    /// The zone times are shown in.
    pub tz: Tz,
    /// Window start.
    pub window_start: DateTime<Utc>,
    /// Window end.
    pub window_end: DateTime<Utc>,
    /// Base of links, without a trailing slash.
    pub public_url: String,
}

/// Everything read from the ledger for one project's digest.
#[derive(Debug, Clone)]
pub struct ProjectInput {
    /// The project.
    pub project: Project,
    /// Jobs that ended in the window, in order, with their findings.
    pub jobs: Vec<(Job, Vec<FindingRecord>)>,
    /// Drafted patches of the window.
    pub patches: Vec<DraftedPatch>,
    /// The base job and its findings per compared lineage, keyed by the
    /// window job's id.
    pub bases: BTreeMap<String, (String, Vec<FindingRecord>, Job)>,
    /// The previous sent digest's date.
    pub since_digest: Option<String>,
    /// The base cutoff (RFC 3339).
    pub base_cutoff: String,
    /// This date's delivery record.
    pub delivery: Option<DigestRun>,
}

/// The newest job per (subproject, recipe) that a comparison can use.
pub fn lineage_heads(jobs: &[(Job, Vec<FindingRecord>)]) -> Vec<&Job> {
    let mut heads: BTreeMap<(&str, &str), &Job> = BTreeMap::new();
    for (job, _) in jobs {
        if matches!(job.status, JobStatus::Succeeded | JobStatus::Failed | JobStatus::TimedOut) {
            heads.insert((&job.subproject, &job.recipe), job);
        }
    }
    heads.into_values().collect()
}

/// Builds a project's digest, subject and bodies included.
pub fn build(input: ProjectInput, ctx: &RenderContext) -> ProjectDigest {
    let p = &input.project;
    let subscribed = subscribed(&p.notify);
    let findings_of: BTreeMap<&str, &Vec<FindingRecord>> =
        input.jobs.iter().map(|(j, f)| (j.id.as_str(), f)).collect();

    // Jobs and patches that raised a subscribed event.
    let mut happened = BTreeSet::new();
    let mut jobs = Vec::new();
    for (job, findings) in &input.jobs {
        let events = job_events(job, findings);
        let hit: Vec<Event> = events.intersection(&subscribed).copied().collect();
        if hit.is_empty() {
            continue;
        }
        happened.extend(hit);
        jobs.push(job_entry(job, findings, events, &ctx.public_url));
    }
    // Changes per lineage, on identity.
    let mut changes = Changes {
        since_digest: input.since_digest.clone(),
        base_cutoff: input.base_cutoff.clone(),
        ..Changes::default()
    };
    let mut new_cves = 0;
    let listed: BTreeSet<(&str, &str)> =
        jobs.iter().map(|j| (j.subproject.as_str(), j.recipe.as_str())).collect();
    for head in lineage_heads(&input.jobs) {
        if !listed.contains(&(head.subproject.as_str(), head.recipe.as_str())) {
            continue;
        }
        let current = findings_of.get(head.id.as_str()).copied().cloned().unwrap_or_default();
        let base = input.bases.get(&head.id);
        changes.compared.push(Lineage {
            subproject: head.subproject.clone(),
            recipe: head.recipe.clone(),
            job_id: head.id.clone(),
            base_job_id: base.map(|b| b.0.clone()),
        });
        let before: &[FindingRecord] = base.map_or(&[], |b| &b.1);
        let before_ids: BTreeSet<&str> = before.iter().map(|f| f.identity.as_str()).collect();
        let now_ids: BTreeSet<&str> = current.iter().map(|f| f.identity.as_str()).collect();
        for f in &current {
            if before_ids.contains(f.identity.as_str()) {
                changes.still_open += 1;
            } else {
                changes.new_count += 1;
                if f.finding.kind == Kind::Cve {
                    new_cves += 1;
                }
                if changes.new.len() < MAX_CHANGES_LISTED {
                    changes.new.push(FindingEntry::new(f, head));
                }
            }
        }
        for f in before.iter().filter(|f| !now_ids.contains(f.identity.as_str())) {
            changes.fixed_count += 1;
            if changes.fixed.len() < MAX_CHANGES_LISTED {
                let base_job = base.map_or(head, |b| &b.2);
                changes.fixed.push(FindingEntry::new(f, base_job));
            }
        }
    }

    let patches: Vec<PatchEntry> = if subscribed.contains(&Event::PatchDrafted) {
        input
            .patches
            .iter()
            .map(|pa| PatchEntry {
                patch: pa.clone(),
                url: format!("{}/patches/{}", ctx.public_url, pa.id),
            })
            .collect()
    } else {
        Vec::new()
    };
    if !patches.is_empty() {
        happened.insert(Event::PatchDrafted);
    }

    let counts = Counts {
        jobs: jobs.len(),
        failed: jobs
            .iter()
            .filter(|j| matches!(j.status, JobStatus::Failed | JobStatus::TimedOut))
            .count(),
        new_cves,
        new_other: changes.new_count - new_cves,
        fixed: changes.fixed_count,
        still_open: changes.still_open,
        patches: patches.len(),
    };
    let verdict = if p.notify.email.is_empty() {
        Verdict::NoRecipients
    } else if happened.is_empty() {
        Verdict::NothingToReport
    } else {
        Verdict::Send
    };
    let mut d = ProjectDigest {
        project: p.name.clone(),
        recipients: p.notify.email.clone(),
        subscribed: subscribed.into_iter().collect(),
        events: happened.into_iter().collect(),
        verdict,
        delivery: input.delivery,
        changes,
        counts,
        jobs,
        patches,
        project_url: format!("{}/projects/{}", ctx.public_url, p.name),
        subject: String::new(),
        text: String::new(),
        html: String::new(),
    };
    d.subject = body::subject(&d, ctx.date);
    d.text = body::text_body(&d, ctx);
    d.html = body::html_body(&d, ctx);
    d
}

fn job_entry(
    job: &Job,
    findings: &[FindingRecord],
    events: BTreeSet<Event>,
    public_url: &str,
) -> JobEntry {
    let mut by_kind = BTreeMap::new();
    for f in findings {
        *by_kind.entry(f.finding.kind.as_str().to_owned()).or_insert(0) += 1;
    }
    let mut ranked: Vec<&FindingRecord> = findings.iter().collect();
    // Stable: equally severe findings keep the order the tool reported them in.
    ranked.sort_by_key(|f| std::cmp::Reverse(f.finding.severity));
    let duration_secs = match (&job.started_at, &job.finished_at) {
        (Some(s), Some(f)) => {
            let s = DateTime::parse_from_rfc3339(s).ok();
            let f = DateTime::parse_from_rfc3339(f).ok();
            s.zip(f).map(|(s, f)| (f - s).num_milliseconds().max(0) as f64 / 1000.0)
        }
        _ => None,
    };
    JobEntry {
        id: job.id.clone(),
        subproject: job.subproject.clone(),
        recipe: job.recipe.clone(),
        status: job.status,
        exit_code: job.exit_code,
        reason: job.reason.as_deref().map(clean_text),
        duration_secs,
        finished_at: job.finished_at.clone(),
        events: events.into_iter().collect(),
        findings_by_kind: by_kind,
        top_findings: ranked
            .into_iter()
            .take(TOP_FINDINGS)
            .map(|f| FindingEntry::new(f, job))
            .collect(),
        advisories: findings
            .iter()
            .filter(|f| f.finding.kind == Kind::Cve)
            .map(|f| Advisory {
                id: clean_text(&f.finding.code),
                severity: f.finding.severity,
                file: f.finding.file.as_deref().map(clean_text),
                suggested_fix: f.finding.suggested_fix.as_deref().map(clean_text),
            })
            .collect(),
        url: format!("{public_url}/jobs/{}", job.id),
        findings_url: format!("{public_url}/jobs/{}/findings", job.id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RecipeSnapshot;

    fn job(recipe: &str, status: JobStatus) -> Job {
        Job {
            id: "j1".into(),
            project: "p".into(),
            subproject: ".".into(),
            recipe: recipe.into(),
            git_ref: None,
            sha: None,
            status,
            exit_code: None,
            reason: None,
            recipe_snapshot: RecipeSnapshot {
                recipe: recipe.into(),
                command: "true".into(),
                subproject: ".".into(),
                language: "x".into(),
                timeout_secs: 1,
                network: None,
                changed_files: None,
            },
            log_bytes: 0,
            findings_count: 0,
            created_at: String::new(),
            started_at: None,
            finished_at: None,
        }
    }

    fn finding(kind: Kind, severity: Severity) -> FindingRecord {
        FindingRecord {
            id: 1,
            job_id: "j1".into(),
            finding: crate::model::Finding {
                kind,
                severity,
                tool: "t".into(),
                file: None,
                line: None,
                column: None,
                code: "c".into(),
                message: "m".into(),
                suggested_fix: None,
                fingerprint: String::new(),
                raw_json: None,
            },
            identity: "i".into(),
            created_at: String::new(),
        }
    }

    fn names(ev: BTreeSet<Event>) -> Vec<&'static str> {
        ev.into_iter().map(Event::as_str).collect()
    }

    #[test]
    fn events_of_jobs() {
        use JobStatus::*;
        let cases: &[(&str, JobStatus, &[FindingRecord], &[&str])] = &[
            ("audit", Succeeded, &[], &["audit_pass", "nightly_summary"]),
            ("audit-deps", Failed, &[], &["audit_fail", "nightly_summary"]),
            ("audit", TimedOut, &[], &["audit_fail", "nightly_summary"]),
            ("audit", Cancelled, &[], &["nightly_summary"]),
            ("auditor", Failed, &[], &["nightly_summary"]),
            ("test", Failed, &[], &["test_fail", "nightly_summary"]),
            (
                "build",
                Failed,
                &[finding(Kind::TestFail, Severity::Error)],
                &["test_fail", "nightly_summary"],
            ),
            ("lint", Succeeded, &[finding(Kind::Lint, Severity::Info)], &["nightly_summary"]),
            (
                "lint",
                Succeeded,
                &[finding(Kind::Lint, Severity::Warn)],
                &["lint_warn", "nightly_summary"],
            ),
            (
                "build",
                Succeeded,
                &[finding(Kind::Cve, Severity::Warn)],
                &["cve_found", "nightly_summary"],
            ),
        ];
        for (recipe, status, findings, want) in cases {
            assert_eq!(
                names(job_events(&job(recipe, *status), findings)),
                *want,
                "{recipe} {status:?}"
            );
        }
    }

    #[test]
    fn empty_notify_on_means_the_three_defaults() {
        let n = Notify::default();
        assert_eq!(names(subscribed(&n)), ["audit_fail", "cve_found", "patch_drafted"]);
        let n = Notify { on: vec!["lint_warn".into()], ..Notify::default() };
        assert_eq!(names(subscribed(&n)), ["lint_warn"]);
        assert_eq!(Event::ALL.map(Event::as_str), *crate::model::NOTIFY_EVENTS);
    }

    #[test]
    fn clean_text_unifies_line_ends_and_drops_controls() {
        assert_eq!(clean_text("a\r\nb\rc\nd\u{0}\u{1b}[31me\tf"), "a\nb\nc\nd[31me\tf");
        assert!(clean_text(&"x".repeat(5000)).ends_with(" [...]"));
    }
}
