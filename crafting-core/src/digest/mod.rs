//! The daily digest: one mail per project per day about the jobs of the last
//! day, filtered by the events the project subscribes to.
//!
//! - [`schedule`]: the cron expression on a time zone's wall clock, the
//!   daylight-saving rules and the window each date covers.
//! - [`render`]: how jobs map to events, and the digest records (served as
//!   JSON) built from the ledger's rows.
//! - [`body`]: the subject and the text and HTML bodies.
//! - [`mail`]: the MIME message and the SMTP relay (lettre).
//! - [`DigestService`]: reads the ledger, renders, claims and sends.
//! - [`DigestScheduler`]: the actor that owns the timer and answers
//!   [`RunNow`] and [`Render`].
//!
//! # Delivery, exactly once per date and project
//!
//! `digest_runs` has one row per (date, project). Before sending, a run
//! claims the row in an IMMEDIATE transaction: a missing or `failed` row
//! becomes `sending`; a `sent` row means the mail went already and the run
//! skips it; a `sending` row means another run is at it, unless it was
//! claimed more than [`STALE_CLAIM`] ago, which only happens when the process
//! died mid-send: such a row is treated as failed and claimed again. After the
//! relay answers, the row becomes `sent` or `failed` with the reason. So a
//! failed send is retried by the next run of that date, and a date is never
//! sent twice once it succeeded; the one exception is a crash between the
//! relay accepting the mail and the row being marked, which may send that
//! mail once more. Dry runs read and render but record nothing.
//!
//! # Without SMTP
//!
//! When `CRAFTING_SMTP_HOST` is not set the timer is off (one INFO line says
//! so at start), dry runs and renders still work, and a non-dry run is
//! refused with [`Error::Unavailable`] (`smtp_unconfigured`).

pub mod body;
pub mod mail;
pub mod render;
pub mod schedule;
pub mod settings;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::ledger::{DigestClaim, Ledger, NewDigestClaim};
use crate::model::Project;
pub use mail::{Mail, Mailer};
pub use render::{DayDigest, Event, ProjectDigest, Verdict};
pub use schedule::{DigestClock, Timer};
pub use settings::{DigestConfig, SmtpConfig, SmtpTls};

/// A `sending` claim older than this is taken to be from a process that
/// died mid-send, and is claimed again. It is well above the SMTP timeout, so
/// a live send is never taken over.
pub const STALE_CLAIM: Duration = Duration::from_secs(10 * 60);
/// After a scheduled run with failures, the same date is run again this
/// long later, then twice and three times as long.
pub const RETRY_AFTER: Duration = Duration::from_secs(15 * 60);
/// Scheduled retries of a date with failures.
pub const MAX_RETRIES: u32 = 3;
/// At start, a digest whose fire time passed less than this long ago (the
/// service was down when it was due) is sent then.
pub const CATCH_UP: Duration = Duration::from_secs(12 * 3600);

/// The log line written once at start when SMTP is not configured.
pub const DISABLED_LINE: &str = "digest disabled — CRAFTING_SMTP_HOST not set";

/// Parses a `YYYY-MM-DD` date from a request.
pub fn parse_date(s: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        Error::invalid(
            "invalid_date",
            format!("{s:?} is not a date; use YYYY-MM-DD, e.g. 2026-12-04"),
        )
    })
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What a run did for one project.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum RunOutcome {
    /// The relay accepted the mail.
    Sent {
        /// Where it went.
        recipients: Vec<String>,
        /// Its subject.
        subject: String,
        /// 1 for the first attempt on this date.
        attempt: u32,
    },
    /// Sent by an earlier run; nothing done.
    SkippedAlreadySent {
        /// When.
        sent_at: Option<String>,
    },
    /// Another run is sending it right now.
    SkippedInProgress {
        /// When that run started.
        claimed_at: String,
    },
    /// The project has no `notify.email`.
    SkippedNoRecipients,
    /// No subscribed event happened in the window.
    SkippedNothingToReport,
    /// The relay refused or could not be reached; the next run retries.
    Failed {
        /// What went wrong.
        reason: String,
        /// Attempt number; 0 when the ledger failed before a claim was made.
        attempt: u32,
    },
    /// A dry run: what would be sent.
    DryRun {
        /// The rendered digest.
        digest: Box<ProjectDigest>,
    },
}

/// One project's line of a [`RunReport`].
#[derive(Debug, Clone, Serialize)]
pub struct ProjectRun {
    /// Project name.
    pub project: String,
    /// What happened.
    #[serde(flatten)]
    pub outcome: RunOutcome,
}

/// What a run did, per project.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The digest date.
    pub date: NaiveDate,
    /// Whether nothing was sent or recorded.
    pub dry_run: bool,
    /// Window start (RFC 3339, UTC).
    pub window_start: String,
    /// Window end.
    pub window_end: String,
    /// Every project, by name.
    pub projects: Vec<ProjectRun>,
}

impl RunReport {
    /// Projects whose send failed.
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, RunOutcome::Failed { .. }))
    }

    /// Projects mailed by this run.
    pub fn sent(&self) -> usize {
        self.count(|o| matches!(o, RunOutcome::Sent { .. }))
    }

    fn count(&self, f: impl Fn(&RunOutcome) -> bool) -> usize {
        self.projects.iter().filter(|p| f(&p.outcome)).count()
    }
}

/// Builds and sends digests. Cheap to clone; the scheduler and the handle
/// share one.
#[derive(Clone)]
pub struct DigestService {
    inner: Arc<ServiceInner>,
}

struct ServiceInner {
    ledger: Ledger,
    clock: DigestClock,
    mailer: Option<Mailer>,
    public_url: String,
}

impl DigestService {
    /// A service over `ledger` with the schedule, relay and links of `cfg`.
    pub fn new(ledger: Ledger, cfg: &DigestConfig) -> Result<DigestService> {
        let mailer = cfg.smtp.as_ref().map(Mailer::new).transpose()?;
        Ok(DigestService {
            inner: Arc::new(ServiceInner {
                ledger,
                clock: DigestClock::new(&cfg.cron, cfg.time_zone)?,
                mailer,
                public_url: cfg.public_url.trim_end_matches('/').to_owned(),
            }),
        })
    }

    /// The schedule.
    pub fn clock(&self) -> &DigestClock {
        &self.inner.clock
    }

    /// True when an SMTP relay is configured (the timer runs, mails go out).
    pub fn can_send(&self) -> bool {
        self.inner.mailer.is_some()
    }

    fn context(&self, date: NaiveDate) -> render::RenderContext {
        let (start, end) = self.inner.clock.window(date);
        render::RenderContext {
            date,
            tz: self.inner.clock.time_zone(),
            window_start: start,
            window_end: end,
            public_url: self.inner.public_url.clone(),
        }
    }

    /// The digest of `date` for every project, as `GET /digests/{date}` serves it.
    pub async fn render(&self, date: NaiveDate) -> Result<DayDigest> {
        let ctx = self.context(date);
        let mut projects = Vec::new();
        for row in self.inner.ledger.list_projects(None).await? {
            projects.push(self.project_digest(row.project, &ctx).await?);
        }
        Ok(DayDigest {
            date,
            time_zone: ctx.tz.name().to_owned(),
            window_start: rfc3339(ctx.window_start),
            window_end: rfc3339(ctx.window_end),
            projects,
        })
    }

    /// Reads what one project's digest needs and renders it.
    async fn project_digest(
        &self,
        project: Project,
        ctx: &render::RenderContext,
    ) -> Result<ProjectDigest> {
        let ledger = &self.inner.ledger;
        let name = project.name.clone();
        let (start, end) = (rfc3339(ctx.window_start), rfc3339(ctx.window_end));
        let date = ctx.date.to_string();

        // The window's jobs with their findings.
        let mut jobs = Vec::new();
        for row in ledger.jobs_finished_between(name.clone(), start.clone(), end.clone()).await? {
            let findings = ledger.findings(row.job.id.clone()).await?;
            jobs.push((row.job, findings));
        }

        // The base of the comparison: as of the previous sent digest.
        let previous = ledger.previous_sent_digest(name.clone(), date.clone()).await?;
        let cutoff = match &previous {
            Some(p) => p
                .window_end
                .clone()
                .or_else(|| parse_date(&p.date).ok().map(|d| rfc3339(self.clock().window_end(d))))
                .unwrap_or_else(|| start.clone())
                .min(start.clone()),
            None => start.clone(),
        };
        let mut bases = BTreeMap::new();
        for head in render::lineage_heads(&jobs) {
            let base = ledger
                .latest_finished_before(
                    name.clone(),
                    head.subproject.clone(),
                    head.recipe.clone(),
                    cutoff.clone(),
                )
                .await?;
            if let Some(base_id) = base
                && let Some(base_row) = ledger.get_job(base_id.clone()).await?
            {
                let findings = ledger.findings(base_id.clone()).await?;
                bases.insert(head.id.clone(), (base_id, findings, base_row.job));
            }
        }

        let patches = ledger.drafted_patches_between(name.clone(), start, end).await?;
        let delivery = ledger.digest_run(date, name).await?;
        let input = render::ProjectInput {
            project,
            jobs,
            patches,
            bases,
            since_digest: previous.map(|p| p.date),
            base_cutoff: cutoff,
            delivery,
        };
        Ok(render::build(input, ctx))
    }

    /// Runs the digest of `date` (by default the newest date whose window has
    /// closed): renders every project and, unless `dry_run`, claims and
    /// sends each mail that is due.
    #[tracing::instrument(skip(self), fields(date = ?date))]
    pub async fn run(&self, date: Option<NaiveDate>, dry_run: bool) -> Result<RunReport> {
        let mailer = match (&self.inner.mailer, dry_run) {
            (_, true) => None,
            (Some(m), false) => Some(m),
            (None, false) => {
                return Err(Error::Unavailable {
                    code: "smtp_unconfigured",
                    message: "digests cannot be sent: no SMTP relay is configured; set \
                              CRAFTING_SMTP_HOST (and CRAFTING_SMTP_FROM), or ask for a dry run"
                        .to_owned(),
                });
            }
        };
        self.run_inner(date, mailer).await
    }

    /// The run the timer makes when it fires at `at`: the newest date whose
    /// window has closed by then, for real.
    pub async fn tick(&self, at: DateTime<Utc>) -> Result<RunReport> {
        self.run(Some(self.clock().latest_closed_date(at)), false).await
    }

    async fn run_inner(
        &self,
        date: Option<NaiveDate>,
        mailer: Option<&Mailer>,
    ) -> Result<RunReport> {
        let date = date.unwrap_or_else(|| self.clock().latest_closed_date(Utc::now()));
        let day = self.render(date).await?;
        let mut projects = Vec::new();
        for digest in day.projects {
            let project = digest.project.clone();
            let outcome = match (digest.verdict, mailer) {
                (Verdict::NoRecipients, _) => RunOutcome::SkippedNoRecipients,
                (Verdict::NothingToReport, _) => RunOutcome::SkippedNothingToReport,
                (Verdict::Send, None) => RunOutcome::DryRun { digest: Box::new(digest) },
                (Verdict::Send, Some(m)) => {
                    // A ledger failure on one project does not stop the others.
                    self.deliver(m, digest, date, &day.window_start, &day.window_end)
                        .await
                        .unwrap_or_else(|e| {
                            tracing::error!(%project, %date, error = %e, "digest bookkeeping failed");
                            RunOutcome::Failed { reason: format!("ledger: {e}"), attempt: 0 }
                        })
                }
            };
            projects.push(ProjectRun { project, outcome });
        }
        Ok(RunReport {
            date,
            dry_run: mailer.is_none(),
            window_start: day.window_start,
            window_end: day.window_end,
            projects,
        })
    }

    /// Claims, sends and records one project's mail.
    async fn deliver(
        &self,
        mailer: &Mailer,
        d: ProjectDigest,
        date: NaiveDate,
        window_start: &str,
        window_end: &str,
    ) -> Result<RunOutcome> {
        let ledger = &self.inner.ledger;
        let stale = Utc::now() - chrono::Duration::from_std(STALE_CLAIM).unwrap_or_default();
        let claim = NewDigestClaim {
            date: date.to_string(),
            project: d.project.clone(),
            recipients: d.recipients.clone(),
            window_start: window_start.to_owned(),
            window_end: window_end.to_owned(),
            subject: d.subject.clone(),
            stale_before: rfc3339(stale),
        };
        let (attempt, claimed_at) = match ledger.claim_digest(claim).await? {
            DigestClaim::Claimed { attempt, claimed_at } => (attempt, claimed_at),
            DigestClaim::AlreadySent { sent_at } => {
                return Ok(RunOutcome::SkippedAlreadySent { sent_at });
            }
            DigestClaim::InProgress { claimed_at } => {
                return Ok(RunOutcome::SkippedInProgress { claimed_at });
            }
        };
        let mail = Mail {
            to: d.recipients.clone(),
            subject: d.subject.clone(),
            text: d.text.clone(),
            html: d.html.clone(),
        };
        let result = mailer.send(&mail).await;
        let recorded = result.clone().map_err(|e| e.chars().take(1000).collect::<String>());
        ledger.finish_digest(date.to_string(), d.project.clone(), claimed_at, recorded).await?;
        Ok(match result {
            Ok(()) => {
                tracing::info!(project = %d.project, %date, recipients = d.recipients.len(), attempt, "digest sent");
                RunOutcome::Sent { recipients: d.recipients, subject: d.subject, attempt }
            }
            Err(reason) => {
                tracing::warn!(project = %d.project, %date, attempt, error = %reason, "digest not sent");
                RunOutcome::Failed { reason, attempt }
            }
        })
    }
}

/// Owns the digest timer; answers [`RunNow`] and [`Render`]. Its decisions
/// live in [`Timer`] and [`DigestService`].
pub struct DigestScheduler {
    service: DigestService,
    timer: Timer,
}

impl DigestScheduler {
    /// A scheduler around `service`.
    pub fn new(service: DigestService) -> Self {
        let timer = Timer::new(service.clock().clone());
        DigestScheduler { service, timer }
    }

    /// Starts the scheduler under a supervisor. Without SMTP it logs
    /// [`DISABLED_LINE`] once and keeps its timer off.
    pub fn start(service: DigestService) -> Addr<DigestScheduler> {
        if !service.can_send() {
            tracing::info!("{DISABLED_LINE}");
        }
        Supervisor::start(move |_| DigestScheduler::new(service))
    }

    /// Sets the timer for the next fire instant.
    fn arm(&mut self, ctx: &mut Context<Self>) {
        let Some(wake) = self.timer.plan(Utc::now()) else {
            tracing::warn!("the digest schedule has no future fire time; the timer stops");
            return;
        };
        ctx.run_later(wake.after, move |me, ctx| {
            if let Some(date) = me.timer.wake(Utc::now(), wake.target) {
                me.send_date(date, 0, ctx);
            }
            me.arm(ctx);
        });
    }

    /// Runs the digest of `date` in the background; a run with failures is
    /// tried again later, up to [`MAX_RETRIES`] times.
    fn send_date(&mut self, date: NaiveDate, retry: u32, ctx: &mut Context<Self>) {
        let service = self.service.clone();
        let run = async move { service.run(Some(date), false).await };
        ctx.spawn(run.into_actor(self).map(move |result, _me, ctx| match result {
            Ok(report) => {
                let failed = report.failed();
                tracing::info!(%date, sent = report.sent(), failed, retry, "digest run done");
                if failed > 0 && retry < MAX_RETRIES {
                    ctx.run_later(RETRY_AFTER * (retry + 1), move |me, ctx| {
                        me.send_date(date, retry + 1, ctx)
                    });
                }
            }
            Err(e) => tracing::error!(%date, error = %e, "digest run failed"),
        }));
    }
}

impl Actor for DigestScheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if !self.service.can_send() {
            return;
        }
        let now = Utc::now();
        let due = self.service.clock().latest_closed_date(now);
        let since = (now - self.service.clock().window_end(due)).to_std().unwrap_or_default();
        if since < CATCH_UP {
            self.send_date(due, 0, ctx);
        }
        self.arm(ctx);
    }
}

impl Supervised for DigestScheduler {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // The timer state is kept: the fire instant already served is not
        // served again after a restart.
        tracing::warn!("digest scheduler restarting");
    }
}

/// Sent by the handle (`POST /admin/digest/run-now`): run a date's digest
/// now. Replies with what happened per project.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<RunReport>")]
pub struct RunNow {
    /// The date; the newest date whose window has closed when absent.
    pub date: Option<NaiveDate>,
    /// Render only: send nothing, record nothing.
    pub dry_run: bool,
}

/// Sent by the handle (`GET /digests/{date}`): render a date's digest for
/// every project. Replies with the digest.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<DayDigest>")]
pub struct Render {
    /// The date.
    pub date: NaiveDate,
}

impl Handler<RunNow> for DigestScheduler {
    type Result = ResponseFuture<Result<RunReport>>;

    fn handle(&mut self, m: RunNow, _: &mut Context<Self>) -> Self::Result {
        let service = self.service.clone();
        Box::pin(async move { service.run(m.date, m.dry_run).await })
    }
}

impl Handler<Render> for DigestScheduler {
    type Result = ResponseFuture<Result<DayDigest>>;

    fn handle(&mut self, m: Render, _: &mut Context<Self>) -> Self::Result {
        let service = self.service.clone();
        Box::pin(async move { service.render(m.date).await })
    }
}
