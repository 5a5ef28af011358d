//! The parser trait, the per-language registry and the generic fallback.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::PathBuf;

use crate::finding::{Finding, Kind, Severity, fingerprint};

/// What a parser knows about the log it reads.
#[derive(Debug, Clone)]
pub struct ParseContext {
    /// The subproject's language (`rust`, `python`, `go`, `typescript`, ...).
    pub language: String,
    /// The recipe name (`lint`, `test`, `audit`, `build`, ...).
    pub recipe: String,
    /// The recipe's exit code; `None` when it was killed by a signal.
    pub exit_code: Option<i32>,
    /// Absolute path of the repository checkout as the job saw it.
    pub repo_root: PathBuf,
    /// The folder the recipe ran in, relative to `repo_root` (`.` for the root).
    pub work_dir: PathBuf,
}

impl ParseContext {
    /// Builds a context.
    pub fn new(
        language: &str,
        recipe: &str,
        exit_code: Option<i32>,
        repo_root: impl Into<PathBuf>,
        work_dir: impl Into<PathBuf>,
    ) -> Self {
        ParseContext {
            language: language.to_owned(),
            recipe: recipe.to_owned(),
            exit_code,
            repo_root: repo_root.into(),
            work_dir: work_dir.into(),
        }
    }
}

/// A parser for one language's tool output.
pub trait Parser: Send + Sync {
    /// Whether this parser understands what `recipe` prints.
    fn claims(&self, recipe: &str) -> bool;
    /// Reads the whole log and returns what it recognised. Must never panic.
    fn parse(&self, ctx: &ParseContext, log: &mut dyn BufRead) -> Vec<Finding>;
}

/// Language -> parsers table, with the generic fallback behind it.
#[derive(Default)]
pub struct Registry {
    parsers: HashMap<String, Vec<Box<dyn Parser>>>,
}

impl Registry {
    /// An empty registry: every log goes to the generic fallback.
    pub fn empty() -> Self {
        Registry::default()
    }

    /// The registry with every built-in parser.
    pub fn with_defaults() -> Self {
        Registry::default()
    }

    /// Adds a parser for `language`.
    pub fn register(&mut self, language: &str, parser: Box<dyn Parser>) {
        self.parsers.entry(language.to_owned()).or_default().push(parser);
    }

    /// Parses a log: the first parser of the language that claims the recipe
    /// reads it; when none produced a finding and the exit code is non-zero,
    /// the generic fallback reports one `recipe_fail`.
    pub fn parse(&self, ctx: &ParseContext, log: &mut dyn BufRead) -> Vec<Finding> {
        let mut findings = Vec::new();
        if let Some(parsers) = self.parsers.get(&ctx.language) {
            if let Some(p) = parsers.iter().find(|p| p.claims(&ctx.recipe)) {
                findings = p.parse(ctx, log);
            }
        }
        if findings.is_empty() {
            if let Some(f) = generic_failure(ctx) {
                findings.push(f);
            }
        }
        findings
    }
}

/// The fallback finding for a failed recipe that no parser explained.
pub fn generic_failure(ctx: &ParseContext) -> Option<Finding> {
    let code = match ctx.exit_code {
        Some(0) => return None,
        Some(n) => format!("exit_{n}"),
        None => "exit_signal".to_owned(),
    };
    Some(Finding {
        kind: Kind::RecipeFail,
        severity: Severity::Error,
        tool: "recipe".to_owned(),
        file: None,
        line: None,
        column: None,
        fingerprint: fingerprint(Kind::RecipeFail, None, None, &code),
        message: format!("recipe `{}` failed ({})", ctx.recipe, code.replace('_', " ")),
        code,
        suggested_fix: None,
        raw_json: None,
    })
}
