//! Tests of the daily digest through the engine's handle: real jobs on real
//! git repositories, a real SQLite ledger, and mail over a loopback socket to
//! a real SMTP server (`smtp_sink.py`, aiosmtpd).

mod support;

/// The real timer firing, and what changed since the previous digest.
mod changes;
/// One mail per project and date: repeated runs, the timer's tick, refusals, stale claims.
mod delivery;
/// Which jobs each project hears about, by subscribed event.
mod events;
/// Hostile finding text: header injection, markup, non-ASCII, lone dots.
mod hostile;
/// Cron evaluation across daylight-saving changes.
mod schedule;
/// Without an SMTP host: one log line, dry runs only.
mod unconfigured;
