//! `crafting-table`: the host binary. One subcommand per job; `serve` runs
//! the engine behind the HTTP API.

mod doctor;
mod parse;
mod serve;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Every `CRAFTING_*` variable, shown under `crafting-table --help`.
const ENVIRONMENT: &str = "\
Environment (a .env file in the current directory is read too; real environment
variables win over it, flags of `serve` win over both; a blank value counts as unset):

  variable                        default                      meaning
  CRAFTING_BIND                   127.0.0.1:8810               listen address
  CRAFTING_DATA_DIR               ./data                       ledger, admin bearer file, job logs
  CRAFTING_WORKSPACE_DIR          ./workspace                  bare clones and worktrees
  CRAFTING_CACHES_DIR             ./caches                     tool caches handed to recipes
  CRAFTING_LAN_CIDRS              10.0.0.0/8,172.16.0.0/12,    networks requests may come from
                                  192.168.0.0/16,127.0.0.0/8,
                                  ::1/128
  CRAFTING_TRUSTED_PROXIES        (none)                       peers whose X-Forwarded-For counts
  CRAFTING_LOCAL_GIT_ROOTS        (none)                       folders local repositories may be
                                                               registered from (`:` or `,` separated)
  CRAFTING_RUNNER_WORKERS         number of cores              concurrent jobs
  CRAFTING_DEFAULT_TIMEOUT_SECS   1800                         recipe timeout when a subproject sets none
  CRAFTING_LOG_MAX_BYTES          268435456 (256 MiB)          log cap per job
  CRAFTING_KILL_GRACE_SECS        10                           SIGTERM-to-SIGKILL grace for stopped jobs
  CRAFTING_MAX_BODY_BYTES         1048576 (1 MiB)              largest request body
  CRAFTING_SHUTDOWN_GRACE_SECS    30                           time running jobs get to finish on shutdown

  Daily digest (the scheduler stays off while CRAFTING_SMTP_HOST is unset):
  CRAFTING_SMTP_HOST              (none)                       SMTP relay; unset: no mail is sent
  CRAFTING_SMTP_PORT              587 (465 with tls, 25 none)  SMTP port
  CRAFTING_SMTP_USER, _PASS       (none)                       SMTP login, used when both are set
  CRAFTING_SMTP_FROM              crafting-table@localhost     sender address
  CRAFTING_SMTP_TLS               starttls                     starttls, tls (implicit) or none
  CRAFTING_DIGEST_CRON            0 0 6 * * *                  when the digest goes out (5 or 6 fields)
  CRAFTING_DIGEST_TZ              America/Los_Angeles          time zone of the digest schedule
  CRAFTING_PUBLIC_URL             http://<CRAFTING_BIND>       base of the links in mails

  Patch loop (on once a forge is configured; see the README's Patch loop section):
  CRAFTING_GITEA_URL, _TOKEN      (unset)                      Gitea/Forgejo server and its token
  CRAFTING_GITHUB_TOKEN           (unset)                      GitHub token
  CRAFTING_GITHUB_API_URL         https://api.github.com       GitHub Enterprise: https://<host>/api/v3
  CRAFTING_FORGE_TIMEOUT_SECS     30 (1 to 3600)               time one forge request may take
  CRAFTING_AGENT_KIND             (unset: tool fixes only)     openai, anthropic or command
  CRAFTING_AGENT_URL, _TOKEN      (unset)                      agent API base and key
  CRAFTING_AGENT_MODEL            (unset)                      model (openai and anthropic)
  CRAFTING_AGENT_COMMAND          (unset)                      program of a command agent (JSON in/out)
  CRAFTING_AGENT_TIMEOUT_SECS     120 (1 to 3600)              time one agent request may take
  CRAFTING_AGENT_RETRIES          2 (0 to 10)                  retries after timeouts, 429 and 5xx
  CRAFTING_PATCHER_BRANCH_PREFIX  crafting-table/auto/         fix branches: <prefix><job>-<finding>
  CRAFTING_PATCHER_MAX_ATTEMPTS   3 (1 to 100)                 attempts per finding identity
  CRAFTING_PATCHER_AUTHOR         crafting-table <crafting-table@localhost>
                                                               commit author, `Name <email>`
  CRAFTING_PATCHER_MAX_DIFF_BYTES 1048576 (1 B to 64 MiB)      largest diff accepted

Logging goes to stderr; RUST_LOG sets the filter (default: info).";

/// Self-hosted polyglot build / test / lint / audit service.
#[derive(Debug, Parser)]
#[command(name = "crafting-table", version, after_help = ENVIRONMENT)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: the engine and the HTTP API.
    Serve(serve::ServeArgs),
    /// Print the findings of a saved log as JSON or SARIF, as the service would record them.
    Parse(parse::ParseArgs),
    /// List the toolchains recipes can use; `--smoke` runs a hello-world with each one present.
    Doctor(doctor::DoctorArgs),
}

fn main() -> ExitCode {
    // Still one thread here: nothing else reads or writes the environment yet.
    if let Err(e) = load_dotenv(Path::new(".env")) {
        eprintln!("crafting-table: cannot read .env: {e}");
        return ExitCode::from(2);
    }
    unset_blank_variables();

    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Parse(args) => parse::run(args),
        Command::Doctor(args) => doctor::run(args),
    }
}

/// Reads `path` into the environment when it exists; variables already set win.
fn load_dotenv(path: &Path) -> Result<(), dotenvy::Error> {
    match dotenvy::from_path(path) {
        Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// A `CRAFTING_*` variable set to blanks counts as unset, as the engine's own
/// configuration reader treats it.
fn unset_blank_variables() {
    let blank: Vec<OsString> = std::env::vars_os()
        .filter(|(k, v)| {
            k.to_str().is_some_and(|k| k.starts_with("CRAFTING_"))
                && v.to_str().is_some_and(|v| v.trim().is_empty())
        })
        .map(|(k, _)| k)
        .collect();
    for key in blank {
        // SAFETY: called from `main` before any other thread exists, so no
        // one else reads or writes the environment concurrently.
        unsafe { std::env::remove_var(key) };
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_names_every_configuration_variable() {
        let help = Cli::command().render_help().to_string();
        for var in [
            "CRAFTING_BIND",
            "CRAFTING_DATA_DIR",
            "CRAFTING_WORKSPACE_DIR",
            "CRAFTING_CACHES_DIR",
            "CRAFTING_LAN_CIDRS",
            "CRAFTING_TRUSTED_PROXIES",
            "CRAFTING_LOCAL_GIT_ROOTS",
            "CRAFTING_RUNNER_WORKERS",
            "CRAFTING_DEFAULT_TIMEOUT_SECS",
            "CRAFTING_LOG_MAX_BYTES",
            "CRAFTING_SMTP_HOST",
            "CRAFTING_DIGEST_CRON",
            "CRAFTING_AGENT_KIND",
            "CRAFTING_GITEA_URL",
            "CRAFTING_GITHUB_TOKEN",
            "CRAFTING_PATCHER_MAX_ATTEMPTS",
            "CRAFTING_PUBLIC_URL",
        ] {
            assert!(help.contains(var), "--help lacks {var}");
        }
    }

    #[test]
    fn serve_flags_parse_with_defaults() {
        let cli =
            Cli::try_parse_from(["crafting-table", "serve", "--bind", "127.0.0.1:0"]).unwrap();
        let Command::Serve(args) = cli.command else { panic!("not serve") };
        assert_eq!(args.bind, "127.0.0.1:0");
        assert_eq!(args.lan_cidrs.0, crafting_http::net::default_lan_cidrs(), "one default list");
        assert!(Cli::try_parse_from(["crafting-table", "serve", "--runner-workers", "x"]).is_err());
        assert!(
            Cli::try_parse_from(["crafting-table", "serve", "--lan-cidrs", "10.0.0.0/99"]).is_err()
        );
    }
}
