//! `crafting-table-mcp`: the crafting-table HTTP API as MCP tools, served over
//! stdio to agent clients.
//!
//! # Code map
//!
//! - [`config`]: `CRAFTING_TABLE_BASE_URL`, `CRAFTING_TABLE_TOKEN` and the
//!   HTTP timeout, read once at startup; the token is a [`config::Bearer`]
//!   that cannot be printed.
//! - [`api`]: a reqwest client of the HTTP API. Success bodies come back as
//!   JSON; failures as an [`api::ApiError`] carrying the API's message and
//!   code, or naming the base URL when the service cannot be reached.
//! - [`server`]: the rmcp server, one `#[tool]` per operation. Admin tools
//!   are added only when [`server::probe_access`] finds an admin token.
//! - [`params`]: the tools' typed inputs, whose JSON schemas clients see.
//! - [`tail`] and [`findings`]: pure helpers that bound what a tool returns
//!   (log lines and bytes; findings by kind, severity and count).
//!
//! # How a tool call flows
//!
//! The client sends `tools/call`; rmcp deserialises the arguments into the
//! tool's `params` struct; the tool calls the API through [`api::Api`]; the
//! answer (or the error) becomes a structured `CallToolResult`, with
//! `isError: true` for errors. Nothing but JSON-RPC frames is written to
//! stdout; logs go to stderr through `tracing`.
#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod findings;
pub mod params;
pub mod server;
pub mod tail;
