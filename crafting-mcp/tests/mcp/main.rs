//! End-to-end tests of `crafting-table-mcp`: the real binary over stdio,
//! driven by rmcp's client, against a real `crafting-table serve`.
//!
//! Needs `target/debug/crafting-table` built next to the MCP binary
//! (`cargo build -p crafting-table`), or `CRAFTING_TABLE_BIN`; the
//! `failures::an_unreachable_*` and `failures::a_missing_token_*` tests need
//! no service.

mod catalogue; // initialize, tool names and input schemas, admin versus user tools
mod common; // harness: service, git repository, MCP session with a stdout recorder
mod failures; // wrong token, unreachable service, missing token, bad arguments
mod jobs; // register, run, wait with progress, findings, log tails, a huge log
