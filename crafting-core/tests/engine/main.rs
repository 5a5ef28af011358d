//! End-to-end tests of the engine through its handle, on real git
//! repositories, real processes and a real SQLite file.

mod common;

/// Concurrency: many jobs, serialised git, ledger under write pressure.
mod concurrency;
/// Findings of real tools: identities and comparisons between jobs.
mod findings;
/// Recipe isolation: secrets, other projects, hooks, fork bombs, disk quota, modes.
mod isolation;
/// Jobs run at the right commit and folder; logs, exit codes, worktree cleanup.
mod jobs;
/// Process groups, timeouts, cancel, log capture and caps.
mod processes;
/// Hard kills and restarts: orphans, queued jobs, nothing finished lost.
mod restart;
/// Refusals of hostile names, paths, refs and URLs.
mod validation;
