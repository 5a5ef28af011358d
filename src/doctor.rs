//! `crafting-table doctor`: which toolchains a recipe would find, and with
//! `--smoke`, whether each one present builds and runs a hello-world.

use std::process::ExitCode;

use clap::Args;
use crafting_core::toolchains;

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
