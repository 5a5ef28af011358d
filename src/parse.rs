//! `crafting-table parse`: the findings of a saved log, as the service would
//! record them, printed as JSON or SARIF 2.1.0.

use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use crafting_parsers::{ParseContext, Registry, SarifTool, to_sarif};

/// Arguments of `crafting-table parse`.
#[derive(Debug, Args)]
pub struct ParseArgs {
    /// The subproject's language: rust, python, go, typescript, javascript, ...
    #[arg(long)]
    language: String,
    /// The recipe name the log came from (lint, test, audit, build, ...).
    #[arg(long)]
    recipe: String,
    /// The recipe's exit code; a non-zero code with no recognised finding
    /// yields one `recipe_fail`.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    exit_code: i32,
    /// Where the repository was checked out when the log was written; absolute
    /// paths under it become relative.
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// The folder the recipe ran in, relative to --root.
    #[arg(long, default_value = ".")]
    work_dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Read the log from this file instead of standard input.
    #[arg(long)]
    log: Option<PathBuf>,
}

/// Output formats of `parse`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// A JSON array of findings.
    Json,
    /// A SARIF 2.1.0 document.
    Sarif,
}

/// Runs `parse`: exit 0 with the findings on stdout, 2 when the log cannot be read.
pub fn run(args: ParseArgs) -> ExitCode {
    let root = std::path::absolute(&args.root).unwrap_or(args.root.clone());
    let ctx = ParseContext::new(
        &args.language.to_ascii_lowercase(),
        &args.recipe,
        Some(args.exit_code),
        root,
        args.work_dir.clone(),
    );
    let registry = Registry::with_defaults();
    let findings = match &args.log {
        Some(path) => match std::fs::File::open(path) {
            Ok(f) => registry.parse(&ctx, &mut BufReader::with_capacity(256 * 1024, f)),
            Err(e) => {
                eprintln!("crafting-table parse: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => registry.parse(&ctx, &mut std::io::stdin().lock()),
    };
    let doc = match args.format {
        Format::Json => serde_json::to_value(&findings).expect("findings serialise"),
        Format::Sarif => {
            let mut tool = SarifTool::new("crafting-table");
            tool.version = Some(env!("CARGO_PKG_VERSION").to_owned());
            to_sarif(&findings, &tool)
        }
    };
    let mut out = std::io::stdout().lock();
    let written = serde_json::to_writer_pretty(&mut out, &doc)
        .map_err(std::io::Error::from)
        .and_then(|_| writeln!(out));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is not an error worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crafting-table parse: cannot write the findings: {e}");
            ExitCode::from(2)
        }
    }
}
