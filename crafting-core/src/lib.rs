//! The embeddable crafting-table engine.
//!
//! Start it with [`CraftingTable::start`] on a [`Config`] inside an actix
//! system, then use the handle's async methods: tokens, projects, jobs,
//! logs, findings and runner statistics. The HTTP host and the MCP server are
//! thin layers over the same handle.
//!
//! # How a job flows
//!
//! 1. [`CraftingTable::enqueue`] validates the request, snapshots the recipe
//!    and stores the job as `queued` in the [`ledger`], then sends
//!    [`runner::Enqueue`] to the [`runner::Runner`].
//! 2. When a slot is free the runner claims the job (`running`) and asks the
//!    [`workspace::WorkspaceManager`] to fetch the project's bare clone and
//!    check out a worktree at the resolved commit ([`workspace::Materialize`]).
//! 3. The recipe runs as `/bin/sh -c <command>` in the subproject folder, in
//!    a new process group with a scrubbed environment; stdout and stderr go
//!    through one pipe into the job's log file ([`process`]).
//! 4. On exit, timeout or cancel, every process of the recipe is stopped
//!    (SIGTERM, grace, SIGKILL), the worktree is released, the log is parsed
//!    by the [`parsers::ParserRegistry`], each finding gets its identity, and
//!    the end state and findings are written in one transaction.
//! 5. A [`runner::JobFinished`] event goes out to subscribers.
//!
//! # Invariants
//!
//! - **No recipe process outlives its job**, found by process group and by the
//!   `CRAFTING_JOB_ID` variable every recipe process inherits.
//! - **Git work for one project is serialised**; projects proceed in parallel.
//! - **What has finished is never lost**: end states and findings are written
//!   in one IMMEDIATE transaction on a WAL ledger; jobs found `running` at
//!   start-up are marked failed (exit code -1, log line
//!   `[crafting-table] runner restart, job orphaned`) and their leftover
//!   processes killed; queued jobs survive and run.
//!
//! # Supervision
//!
//! The actors run under `actix::Supervisor`, which restarts an actor that
//! stops itself. Handlers never panic on bad input: they return errors. The
//! slow work (git, parsing, waiting for processes) runs on blocking threads
//! whose panics come back as errors. A job task that panics is caught by its
//! watcher; the job is recorded as failed and the runner keeps its slot
//! accounting. Job state lives in the ledger, so a restarted actor loses
//! nothing that was recorded.
//!
//! # Example
//!
//! ```no_run
//! use crafting_core::{Caller, Config, CraftingTable, JobRequest};
//!
//! # async fn run() -> crafting_core::Result<()> {
//! let mut config = Config::new("/srv/crafting");
//! config.local_git_roots = vec!["/srv/git".into()];
//! let table = CraftingTable::start(config).await?;
//! let me = Caller::admin("embedder");
//! let spec = serde_json::from_value(serde_json::json!({
//!     "name": "demo",
//!     "git_url": "/srv/git/demo",
//!     "subprojects": [{"path": ".", "language": "rust", "recipes": {"test": "cargo test"}}]
//! })).unwrap();
//! table.create_project(&me, spec).await?;
//! let job = table.enqueue(&me, "demo", JobRequest { recipe: "test".into(), ..Default::default() }).await?;
//! let done = table.wait_job(&me, &job.id, std::time::Duration::from_secs(600)).await?;
//! println!("{} {:?}", done.status.as_str(), done.exit_code);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod config;
pub mod digest;
pub mod error;
mod handle;
pub mod isolation;
pub mod ledger;
pub mod model;
pub mod parsers;
pub mod patcher;
pub mod process;
pub mod runner;
pub mod toolchains;
pub mod validate;
pub mod workspace;

pub use config::Config;
pub use digest::{DayDigest, DigestConfig, DigestService, RunReport};
pub use error::{Error, Result};
pub use handle::{Comparison, CraftingTable, JobView, TAIL_LINES, tail, validate_cidr};
pub use isolation::{Isolation, IsolationMode, IsolationSetting};
pub use model::*;
pub use runner::JobFinished;
