//! End-to-end tests: each starts the real `crafting-table serve` binary on a
//! free loopback port with its own folders, and talks to it over HTTP.

/// Starting and stopping the binary, HTTP helpers, a git repository fixture.
mod support;

/// The digest routes of a service without SMTP.
mod digests;
/// examples/register-all.sh against a real server.
mod examples;
/// A stand-in for Gitea's create-pull-request endpoint.
mod gitea;
/// Malformed, oversized and invalid input; the ledger stays unchanged.
mod hardening;
/// Cancel, restart and shutdown.
mod lifecycle;
/// Log streaming: follow, `Range` and `?offset=` resume, large logs.
mod logs;
/// The network allowlist, `X-Forwarded-For` and per-token networks.
mod network;
/// Cross-token reads answer like missing ones; lists and admin routes.
mod ownership;
/// The patch loop: agent and tool fixes, verification, pull requests, refusals.
mod patches;
/// The README quickstart: tokens, project CRUD, jobs, log, findings, cascade delete.
mod quickstart;
