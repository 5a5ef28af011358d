//! `crafting-table serve`: starts the engine, mounts the HTTP API, and stops
//! both cleanly on SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use crafting_core::{Config, CraftingTable};
use crafting_http::{Cidr, HttpConfig};

/// Flags of `serve`; each one overrides its environment variable.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CRAFTING_BIND", default_value = "127.0.0.1:8810")]
    pub bind: String,
    /// Ledger, admin bearer file and job logs.
    #[arg(long, env = "CRAFTING_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Bare clones and worktrees.
    #[arg(long, env = "CRAFTING_WORKSPACE_DIR", default_value = "./workspace")]
    pub workspace_dir: PathBuf,
    /// Tool caches handed to recipes.
    #[arg(long, env = "CRAFTING_CACHES_DIR", default_value = "./caches")]
    pub caches_dir: PathBuf,
    /// Networks requests may come from (comma-separated CIDRs).
    #[arg(
        long,
        env = "CRAFTING_LAN_CIDRS",
        default_value = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,127.0.0.0/8,::1/128",
        value_parser = cidr_list
    )]
    pub lan_cidrs: CidrList,
    /// Peers whose X-Forwarded-For header is believed (comma-separated CIDRs).
    #[arg(long, env = "CRAFTING_TRUSTED_PROXIES", default_value = "", value_parser = cidr_list)]
    pub trusted_proxies: CidrList,
    /// Folders local repositories may be registered from (`:` or `,` separated).
    #[arg(long, env = "CRAFTING_LOCAL_GIT_ROOTS", default_value = "")]
    pub local_git_roots: String,
    /// Concurrent jobs [default: number of cores].
    #[arg(long, env = "CRAFTING_RUNNER_WORKERS", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub runner_workers: Option<u64>,
    /// Recipe timeout in seconds when a subproject sets none.
    #[arg(long, env = "CRAFTING_DEFAULT_TIMEOUT_SECS", default_value_t = 1800, value_parser = clap::value_parser!(u64).range(1..))]
    pub default_timeout_secs: u64,
    /// Log cap per job in bytes.
    #[arg(long, env = "CRAFTING_LOG_MAX_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub log_max_bytes: u64,
    /// Seconds between SIGTERM and SIGKILL when a job is stopped.
    #[arg(long, env = "CRAFTING_KILL_GRACE_SECS", default_value_t = 10)]
    pub kill_grace_secs: u64,
    /// Largest request body in bytes.
    #[arg(long, env = "CRAFTING_MAX_BODY_BYTES", default_value_t = crafting_http::DEFAULT_MAX_BODY_BYTES as u64, value_parser = clap::value_parser!(u64).range(1024..=64 * 1024 * 1024))]
    pub max_body_bytes: u64,
    /// Seconds running jobs get to finish on shutdown before they are stopped.
    #[arg(long, env = "CRAFTING_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,
}

/// A list of networks as given on the command line or in the environment.
#[derive(Debug, Clone)]
pub struct CidrList(pub Vec<Cidr>);

fn cidr_list(text: &str) -> Result<CidrList, String> {
    crafting_http::net::parse_cidr_list(text).map(CidrList).map_err(|e| e.to_string())
}

impl ServeArgs {
    fn engine_config(&self) -> Result<Config, String> {
        // Everything without a flag (isolation, per-job limits, digest, patch
        // loop) comes from the environment; the flags win where they exist.
        let mut config = Config::from_vars(|k| std::env::var(k).ok()).map_err(|e| e.to_string())?;
        config.data_dir = self.data_dir.clone();
        config.workspace_dir = self.workspace_dir.clone();
        config.caches_dir = self.caches_dir.clone();
        config.local_git_roots = crafting_core::config::split_paths(&self.local_git_roots);
        if let Some(n) = self.runner_workers {
            config.runner_workers = n as usize;
        }
        config.default_timeout = Duration::from_secs(self.default_timeout_secs);
        config.log_max_bytes = self.log_max_bytes;
        config.kill_grace = Duration::from_secs(self.kill_grace_secs);
        Ok(config)
    }

    fn http_config(&self) -> HttpConfig {
        HttpConfig {
            lan_cidrs: self.lan_cidrs.0.clone(),
            trusted_proxies: self.trusted_proxies.0.clone(),
            max_body_bytes: self.max_body_bytes as usize,
            ..HttpConfig::default()
        }
    }
}

/// Runs the service until a signal stops it. Exit code 0 after a clean
/// shutdown, 1 when it could not start.
pub fn run(args: ServeArgs) -> ExitCode {
    let system = actix_web::rt::System::new();
    match system.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "crafting-table could not start");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    // Start the engine.
    let config = args.engine_config()?;
    let table = CraftingTable::start(config.clone())
        .await
        .map_err(|e| format!("starting the engine: {e}"))?;
    if let Some(path) = table.admin_bearer_file() {
        tracing::info!(path = %path.display(), "first start: the admin bearer was written to this file (mode 600)");
    }
    if config.local_git_roots.is_empty() {
        tracing::info!("CRAFTING_LOCAL_GIT_ROOTS is empty: only remote git URLs can be registered");
    }

    // Mount the API and start listening.
    let http = args.http_config();
    let app_table = table.clone();
    let server =
        actix_web::HttpServer::new(move || crafting_http::app(app_table.clone(), http.clone()))
            .disable_signals()
            .shutdown_timeout(10)
            .bind(&args.bind)
            .map_err(|e| format!("binding {}: {e}", args.bind))?;
    for addr in server.addrs() {
        tracing::info!(%addr, data_dir = %config.data_dir.display(), workers = config.runner_workers, "listening");
    }
    let server = server.run();
    let handle = server.handle();
    let mut running = actix_web::rt::spawn(server);

    // Wait for a signal (or for the server to fail on its own).
    tokio::select! {
        signal = shutdown_signal() => {
            tracing::info!(signal, grace_secs = args.shutdown_grace_secs, "shutting down: no new requests, running jobs get the grace period");
        }
        res = &mut running => {
            let reason = match res {
                Ok(Ok(())) => "the HTTP server stopped".to_owned(),
                Ok(Err(e)) => format!("the HTTP server failed: {e}"),
                Err(e) => format!("the HTTP server task failed: {e}"),
            };
            table.shutdown(Duration::ZERO).await;
            return Err(reason);
        }
    }

    // One shutdown path: stop accepting, let jobs finish or stop them, then
    // wait for the server to drain its open requests.
    let grace = Duration::from_secs(args.shutdown_grace_secs);
    tokio::join!(handle.stop(true), table.shutdown(grace));
    let _ = running.await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on the first SIGINT or SIGTERM, naming it.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the service");
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}
