//! `crafting-table doctor`: which toolchains a recipe would find, and with
//! `--smoke`, whether each one present builds and runs a hello-world.

use std::process::ExitCode;

use clap::Args;
use crafting_core::{Config, isolation, toolchains};

/// Arguments of `crafting-table doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Also compile and run each present toolchain's hello-world.
    #[arg(long)]
    smoke: bool,
}

/// Prints the toolchain table; with `--smoke`, exits 1 when a present
/// toolchain fails its hello-world (missing ones are reported, not failures).
pub fn run(args: DoctorArgs) -> ExitCode {
    println!("{}", isolation_line());
    print!("{}", toolchains::render_table(&toolchains::doctor(None)));
    if !args.smoke {
        return ExitCode::SUCCESS;
    }
    let work = std::env::temp_dir().join(format!("crafting-smoke-{}", std::process::id()));
    let results = toolchains::smoke(&work);
    print!("{}", toolchains::render_smoke(&results));
    let _ = std::fs::remove_dir_all(&work);
    if toolchains::smoke_passed(&results) { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// `isolation: <mode>` as the service would pick it from the same
/// environment, or why it could not start with the mode asked for.
fn isolation_line() -> String {
    let cfg = match Config::from_env() {
        Ok(c) => c,
        Err(e) => return format!("isolation: unknown ({e})"),
    };
    match isolation::detect(&cfg) {
        Ok(i) => {
            let limit = if isolation::JobCgroup::available() {
                format!("pids cgroup, {} processes per job", cfg.max_processes)
            } else {
                "no writable pids cgroup".to_owned()
            };
            format!("isolation: {} [{}; process limit: {limit}]", i.mode, i.describe())
        }
        Err(e) => format!("isolation: unavailable ({e})"),
    }
}
