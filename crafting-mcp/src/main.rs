//! `crafting-table-mcp`: runs the MCP server on stdin/stdout.
//!
//! Exit codes: 0 when the client closes the connection, 1 when the server
//! fails, 2 for a usage or configuration error.

use std::process::ExitCode;

use crafting_mcp::api::Api;
use crafting_mcp::config::{BASE_URL_VAR, Config, DEFAULT_BASE_URL, TIMEOUT_VAR, TOKEN_VAR};
use crafting_mcp::server::{self, CraftingMcp};
use rmcp::ServiceExt;
use tracing_subscriber::EnvFilter;

/// Variable with the log filter for stderr (tracing `EnvFilter` syntax).
const LOG_VAR: &str = "CRAFTING_MCP_LOG";

fn usage() -> String {
    format!(
        "crafting-table-mcp {version}\n\
         MCP server (stdio) exposing the crafting-table HTTP API as tools.\n\n\
         Usage: crafting-table-mcp [--help | --version]\n\n\
         Environment:\n  \
           {TOKEN_VAR}      bearer token (required)\n  \
           {BASE_URL_VAR}   API base URL (default {DEFAULT_BASE_URL})\n  \
           {TIMEOUT_VAR}  per-request timeout, 1..=3600 s (default 60)\n  \
           {LOG_VAR}  stderr log filter (default info)\n",
        version = env!("CARGO_PKG_VERSION"),
    )
}

fn main() -> ExitCode {
    // Arguments: only --help and --version; stdout is ours before the protocol starts.
    if let Some(arg) = std::env::args().nth(1) {
        return match arg.as_str() {
            "-h" | "--help" => {
                print!("{}", usage());
                ExitCode::SUCCESS
            }
            "-V" | "--version" => {
                println!("crafting-table-mcp {}", env!("CARGO_PKG_VERSION"));
                ExitCode::SUCCESS
            }
            other => {
                eprintln!("crafting-table-mcp: unknown argument {other:?}\n\n{}", usage());
                ExitCode::from(2)
            }
        };
    }

    // Logs go to stderr only: stdout carries nothing but protocol frames.
    let filter = EnvFilter::try_from_env(LOG_VAR).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(filter)
        .init();

    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("crafting-table-mcp: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("crafting-table-mcp: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server stopped");
            ExitCode::FAILURE
        }
    }
}

/// Why the server stopped early.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("MCP initialisation failed: {0}")]
    Init(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the MCP service task failed: {0}")]
    Join(#[source] tokio::task::JoinError),
}

async fn run(config: Config) -> Result<(), RunError> {
    let api = Api::new(&config).map_err(RunError::Client)?;
    let access = server::probe_access(&api).await;
    let mcp = CraftingMcp::new(api, access);
    tracing::info!(
        base_url = config.base_url.as_str(),
        admin = access == server::Access::Admin,
        tools = mcp.tool_names().len(),
        version = env!("CARGO_PKG_VERSION"),
        "crafting-table-mcp serving on stdio"
    );
    let service = mcp
        .serve(rmcp::transport::io::stdio_pipes())
        .await
        .map_err(|e| RunError::Init(Box::new(e)))?;
    let reason = service.waiting().await.map_err(RunError::Join)?;
    tracing::info!(?reason, "client disconnected");
    Ok(())
}
