//! The parser trait, the per-language registry and the generic fallback.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::PathBuf;

use crate::finding::{Finding, Kind, Severity, fingerprint};
use crate::stream;

/// What a parser knows about the log it reads.
#[derive(Debug, Clone)]
pub struct ParseContext {
    /// The subproject's language (`rust`, `python`, `go`, `typescript`, ...).
    pub language: String,
    /// The recipe name (`lint`, `test`, `audit`, `build`, ...).
    pub recipe: String,
    /// The recipe's exit code; `None` when it was killed by a signal, and
    /// while the recipe still runs: the engine parses a job's log as it is
    /// written (see [`Registry::findings`]), so parsers must not rely on it.
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

/// A parser for one tool's (or one language's) output.
///
/// A parser either reads the whole log itself ([`Parser::parse`]) or, better,
/// offers a [`Session`] ([`Parser::session`]) so that every parser of a
/// language shares one streaming pass over the log. All built-in parsers
/// offer sessions.
pub trait Parser: Send + Sync {
    /// Whether this parser should read the output of `recipe`. The built-in
    /// parsers recognise their formats by content and claim every recipe.
    fn claims(&self, recipe: &str) -> bool;
    /// Reads the whole log and returns what it recognised. Must never panic.
    fn parse(&self, ctx: &ParseContext, log: &mut dyn BufRead) -> Vec<Finding>;
    /// A streaming session over one log, when the parser can work line by
    /// line. The default is `None`: the registry then gives the parser a
    /// copy of the whole log, which costs memory in proportion to the log.
    fn session(&self, ctx: &ParseContext) -> Option<Box<dyn Session>> {
        let _ = ctx;
        None
    }
}

/// One parser's state while a log streams past.
///
/// The registry reads the log once, cleans each line (no line end, no
/// terminal escape sequences, invalid UTF-8 replaced) and offers it to every
/// session in turn; JSON documents found between the lines (one per line or
/// pretty-printed over many) are parsed once and handed to every session.
pub trait Session: Send {
    /// Offered each line that is not part of a JSON document. Returning
    /// `true` claims the line: later sessions do not see it and it is not
    /// read as the start of a JSON document.
    fn line(&mut self, line: &str, out: &mut Vec<Finding>) -> bool {
        let _ = (line, out);
        false
    }
    /// Offered every JSON document of the log.
    fn json(&mut self, doc: &serde_json::Value, out: &mut Vec<Finding>) {
        let _ = (doc, out);
    }
    /// Called once at the end of the log.
    fn finish(&mut self, out: &mut Vec<Finding>) {
        let _ = out;
    }
}

/// The language key whose parsers run for every language.
pub const ANY_LANGUAGE: &str = "*";

/// Language -> parsers table, with the generic fallback behind it.
#[derive(Default)]
pub struct Registry {
    parsers: HashMap<String, Vec<Box<dyn Parser>>>,
    aliases: HashMap<String, String>,
}

impl Registry {
    /// An empty registry: every log goes to the generic fallback.
    pub fn empty() -> Self {
        Registry::default()
    }

    /// The registry with every built-in parser: see the crate documentation
    /// for the formats of each language. `javascript` is an alias of
    /// `typescript`; SARIF and JUnit XML are read for every language.
    pub fn with_defaults() -> Self {
        use crate::tools::*;
        let mut r = Registry::default();
        r.register(ANY_LANGUAGE, Box::new(Junit));
        r.register(ANY_LANGUAGE, Box::new(Sarif));
        r.register("rust", Box::new(CargoDiagnostics));
        r.register("rust", Box::new(CargoAudit));
        r.register("rust", Box::new(CargoTest));
        r.register("python", Box::new(Ruff));
        r.register("python", Box::new(Mypy));
        r.register("python", Box::new(Pytest));
        r.register("python", Box::new(PipAudit));
        r.register("go", Box::new(Govulncheck));
        r.register("go", Box::new(GoVet));
        r.register("typescript", Box::new(Eslint));
        r.register("typescript", Box::new(Tsc));
        r.alias("javascript", "typescript");
        r
    }

    /// Adds a parser for `language` ([`ANY_LANGUAGE`] for every language).
    /// Language names are compared without regard to case.
    pub fn register(&mut self, language: &str, parser: Box<dyn Parser>) {
        self.parsers.entry(language.to_ascii_lowercase()).or_default().push(parser);
    }

    /// Makes `alias` read with the parsers of `language`.
    pub fn alias(&mut self, alias: &str, language: &str) {
        self.aliases.insert(alias.to_ascii_lowercase(), language.to_ascii_lowercase());
    }

    /// The parsers that read a log of `language`: those for every language
    /// first, then the language's own (following an alias).
    fn parsers_for(&self, language: &str) -> impl Iterator<Item = &dyn Parser> {
        let lang = language.to_ascii_lowercase();
        let lang = self.aliases.get(&lang).cloned().unwrap_or(lang);
        let any = self.parsers.get(ANY_LANGUAGE).into_iter().flatten();
        let own = if lang == ANY_LANGUAGE { None } else { self.parsers.get(&lang) };
        any.chain(own.into_iter().flatten()).map(|p| p.as_ref())
    }

    /// Parses a log with every parser of the context's language that claims
    /// the recipe, in one pass; merges duplicate findings; and when nothing
    /// was found and the exit code is non-zero, reports one `recipe_fail`.
    pub fn parse(&self, ctx: &ParseContext, log: &mut dyn BufRead) -> Vec<Finding> {
        let mut findings = self.findings(ctx, log);
        if findings.is_empty() {
            findings.extend(generic_failure(ctx));
        }
        findings
    }

    /// Like [`Registry::parse`] without the generic fallback, for a caller
    /// that reads the log while the recipe still runs and learns its exit
    /// code only at the end (then adds [`generic_failure`] itself when
    /// nothing was found). The parsers do not look at `ctx.exit_code`.
    pub fn findings(&self, ctx: &ParseContext, log: &mut dyn BufRead) -> Vec<Finding> {
        let mut sessions = Vec::new();
        let mut whole = Vec::new();
        for parser in self.parsers_for(&ctx.language).filter(|p| p.claims(&ctx.recipe)) {
            match parser.session(ctx) {
                Some(s) => sessions.push(s),
                None => whole.push(parser),
            }
        }
        if whole.is_empty() {
            stream::run(&mut sessions, log)
        } else {
            // Parsers that read the whole log need a copy each.
            let mut copy = Vec::new();
            // A read error ends the log where it happened.
            let _ = log.read_to_end(&mut copy);
            let mut found = stream::run(&mut sessions, &mut copy.as_slice());
            for parser in whole {
                found.extend(parser.parse(ctx, &mut copy.as_slice()));
            }
            stream::dedupe(found)
        }
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
