//! rustc diagnostics in cargo's JSON messages (`--message-format=json`).
//!
//! Positions: rustc spans carry 1-based lines and 1-based columns counted in
//! characters (`column_start`), which is what findings store; `byte_start`
//! and `byte_end` are 0-based byte offsets into the file and are kept in
//! `raw_json` for patchers.
//!
//! Paths: cargo runs rustc from the workspace root, so span file names are
//! relative to that root (or absolute for crates outside the workspace). The
//! root is recovered from the message's absolute `manifest_path` and
//! `target.src_path`; without them (bare rustc) the work dir is assumed.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::finding::{Finding, Kind, Severity};
use crate::paths::PathMapper;
use crate::registry::{ParseContext, Session};

/// The part of a cargo JSON message this parser reads.
#[derive(Deserialize)]
struct CargoMessage {
    reason: String,
    #[serde(default)]
    manifest_path: Option<String>,
    #[serde(default)]
    target: Option<Target>,
    #[serde(default)]
    message: Option<Diagnostic>,
}

#[derive(Deserialize)]
struct Target {
    #[serde(default)]
    src_path: Option<String>,
}

/// A rustc diagnostic (`rustc_errors::json::Diagnostic`).
#[derive(Deserialize)]
struct Diagnostic {
    message: String,
    #[serde(default)]
    code: Option<DiagnosticCode>,
    level: String,
    #[serde(default)]
    spans: Vec<Span>,
    #[serde(default)]
    children: Vec<Diagnostic>,
}

#[derive(Deserialize)]
struct DiagnosticCode {
    code: String,
}

#[derive(Deserialize)]
struct Span {
    file_name: String,
    /// 0-based byte offset of the start.
    #[serde(default)]
    byte_start: u32,
    /// 0-based byte offset just past the end.
    #[serde(default)]
    byte_end: u32,
    /// 1-based.
    line_start: u32,
    /// 1-based.
    line_end: u32,
    /// 1-based, in characters.
    column_start: u32,
    /// 1-based, in characters, just past the end.
    column_end: u32,
    #[serde(default)]
    is_primary: bool,
    #[serde(default)]
    suggested_replacement: Option<String>,
    #[serde(default)]
    suggestion_applicability: Option<String>,
    #[serde(default)]
    expansion: Option<Box<Expansion>>,
}

#[derive(Deserialize)]
struct Expansion {
    span: Span,
    #[serde(default)]
    macro_decl_name: String,
}

/// Reads cargo and rustc JSON lines.
pub(crate) struct CargoSession {
    paths: PathMapper,
    /// The workspace root (repository-relative) last derived, by manifest.
    root_cache: Option<(String, String, String)>,
    /// Hashes of messages already read: cargo prints a diagnostic once per
    /// target (lib, test, bin) that compiles the file.
    seen: HashSet<u64>,
}

/// A hash of a cargo message without its `target`: the same diagnostic from
/// two targets of one package hashes the same.
fn message_key(line: &str) -> u64 {
    let mut h = DefaultHasher::new();
    let target = line.find(",\"target\":{");
    let message = target.and_then(|t| line[t..].find(",\"message\":{").map(|m| (t, t + m)));
    match message {
        Some((t, m)) => {
            line[..t].hash(&mut h);
            line[m..].hash(&mut h);
        }
        None => line.hash(&mut h),
    }
    h.finish()
}

impl CargoSession {
    pub(crate) fn new(ctx: &ParseContext) -> Self {
        CargoSession { paths: PathMapper::new(ctx), root_cache: None, seen: HashSet::new() }
    }

    /// The repository-relative folder that relative span paths start from.
    fn workspace_root(&mut self, msg: &CargoMessage, first_file: &str) -> String {
        let manifest = msg.manifest_path.as_deref().unwrap_or("");
        let src = msg.target.as_ref().and_then(|t| t.src_path.as_deref()).unwrap_or("");
        if manifest.is_empty() || src.is_empty() {
            return self.paths.work_dir();
        }
        let top = first_file.split(['/', '\\']).next().unwrap_or("");
        if let Some((m, t, root)) = &self.root_cache
            && m == manifest
            && t == top
        {
            return root.clone();
        }
        let root = derive_root(manifest, src, first_file)
            .and_then(|abs| self.paths.relative_dir(&abs))
            .unwrap_or_else(|| self.paths.work_dir());
        self.root_cache = Some((manifest.to_owned(), top.to_owned(), root.clone()));
        root
    }

    fn convert(&mut self, msg: &CargoMessage, diag: &Diagnostic) -> Option<Finding> {
        let severity = match diag.level.as_str() {
            "error" | "error: internal compiler error" => Severity::Error,
            "warning" => Severity::Warn,
            "note" | "help" => Severity::Info,
            // `failure-note` and anything new: summaries without a place.
            _ => return None,
        };
        // Summaries ("2 warnings emitted", "aborting due to ...") have no span.
        let primary = diag.spans.iter().find(|s| s.is_primary).or(diag.spans.first())?;
        let root = self.workspace_root(msg, &primary.file_name);

        // Walk out of macro expansions to the outermost span in the repository.
        let mut chosen: Option<(String, &Span)> = None;
        let mut macros = Vec::new();
        let mut span = Some(primary);
        while let Some(s) = span {
            if let Some(file) = self.map(&root, &s.file_name) {
                chosen = Some((file, s));
            }
            span = s.expansion.as_deref().map(|e| {
                macros.push(e.macro_decl_name.clone());
                &e.span
            });
        }
        let (file, at) = chosen?;

        let code = match &diag.code {
            Some(c) if !c.code.is_empty() => c.code.clone(),
            _ => "rustc".to_owned(),
        };
        let tool = if code.starts_with("clippy::") { "clippy" } else { "rustc" };

        // Suggestions live in the children's spans.
        let mut suggestions = Vec::new();
        let mut fixes = Vec::new();
        let mut notes = Vec::new();
        for child in &diag.children {
            notes.push(json!({"level": child.level, "message": child.message}));
            let mut edits = Vec::new();
            let mut all_machine = true;
            for s in child.spans.iter().filter(|s| s.suggested_replacement.is_some()) {
                let Some(sfile) = self.map(&root, &s.file_name) else { continue };
                let replacement = s.suggested_replacement.clone().unwrap_or_default();
                let applicability = s.suggestion_applicability.as_deref().unwrap_or("Unspecified");
                all_machine &= applicability == "MachineApplicable";
                let range = format!(
                    "{sfile}:{}:{}-{}:{}",
                    s.line_start, s.column_start, s.line_end, s.column_end
                );
                edits.push(if replacement.is_empty() {
                    format!("delete {range}")
                } else {
                    format!("replace {range} with `{replacement}`")
                });
                suggestions.push(json!({
                    "message": child.message,
                    "applicability": applicability,
                    "file": sfile,
                    "byte_start": s.byte_start,
                    "byte_end": s.byte_end,
                    "line_start": s.line_start,
                    "column_start": s.column_start,
                    "line_end": s.line_end,
                    "column_end": s.column_end,
                    "replacement": replacement,
                }));
            }
            if all_machine && !edits.is_empty() {
                fixes.push(format!("{}: {}", child.message, edits.join("; ")));
            }
        }

        let raw = json!({
            "level": diag.level,
            "code": code,
            "message": diag.message,
            "span": {
                "file": file,
                "line_start": at.line_start,
                "column_start": at.column_start,
                "line_end": at.line_end,
                "column_end": at.column_end,
            },
            "macros": macros,
            "children": notes,
            "suggestions": suggestions,
            "target_src_path": msg.target.as_ref().and_then(|t| t.src_path.clone()),
        });
        let fix = if fixes.is_empty() { None } else { Some(fixes.join("\n")) };
        Some(
            Finding::new(Kind::Lint, severity, tool, code, diag.message.clone())
                .at(Some(file), Some(at.line_start), Some(at.column_start))
                .with_fix(fix)
                .with_raw(raw),
        )
    }

    fn map(&self, root: &str, file: &str) -> Option<String> {
        // Spans in compiler-internal sources (`<::std macros>`) are no files.
        if file.starts_with('<') {
            return None;
        }
        self.paths.map_from(file, root)
    }
}

/// Finds the absolute workspace root: the ancestor of the manifest's folder
/// from which `first_file` lands closest to the target's source path.
fn derive_root(manifest: &str, src_path: &str, first_file: &str) -> Option<String> {
    let norm = |s: &str| s.replace('\\', "/");
    let manifest = norm(manifest);
    let src: Vec<String> = norm(src_path).split('/').map(str::to_owned).collect();
    let file: Vec<&str> = first_file.split(['/', '\\']).filter(|p| !p.is_empty()).collect();
    let mut dir: Vec<&str> = manifest.split('/').collect();
    dir.pop();
    let mut best: Option<(usize, usize)> = None;
    for len in (1..=dir.len()).rev() {
        let candidate = dir[..len].iter().copied().chain(file.iter().copied());
        let common = candidate.zip(src.iter()).take_while(|(a, b)| a == b).count();
        if best.is_none_or(|(c, _)| common > c) {
            best = Some((common, len));
        }
    }
    let (_, len) = best?;
    let root = dir[..len].join("/");
    if root.is_empty() { Some("/".to_owned()) } else { Some(root) }
}

impl Session for CargoSession {
    fn line(&mut self, line: &str, out: &mut Vec<Finding>) -> bool {
        if line.starts_with("{\"reason\":\"compiler-message\"") {
            if !self.seen.insert(message_key(line)) {
                return true;
            }
            if let Ok(msg) = serde_json::from_str::<CargoMessage>(line)
                && let Some(diag) = &msg.message
            {
                out.extend(self.convert(&msg, diag));
            }
            return true;
        }
        if line.starts_with("{\"$message_type\":\"diagnostic\"") {
            if let Ok(diag) = serde_json::from_str::<Diagnostic>(line) {
                let msg = CargoMessage {
                    reason: "compiler-message".to_owned(),
                    manifest_path: None,
                    target: None,
                    message: None,
                };
                out.extend(self.convert(&msg, &diag));
            }
            return true;
        }
        // Other cargo messages (artifacts, build scripts) carry no findings.
        line.starts_with("{\"reason\":\"")
    }

    fn json(&mut self, doc: &Value, out: &mut Vec<Finding>) {
        // Messages that did not start the line the usual way (reordered keys).
        if doc.get("reason").and_then(Value::as_str) != Some("compiler-message") {
            return;
        }
        if let Ok(msg) = CargoMessage::deserialize(doc)
            && msg.reason == "compiler-message"
            && let Some(diag) = &msg.message
        {
            out.extend(self.convert(&msg, diag));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_the_workspace_above_a_member() {
        let root = derive_root("/r/ws/app/Cargo.toml", "/r/ws/app/src/main.rs", "app/src/x.rs");
        assert_eq!(root.as_deref(), Some("/r/ws"));
        let root = derive_root("/r/pkg/Cargo.toml", "/r/pkg/src/lib.rs", "src/lib.rs");
        assert_eq!(root.as_deref(), Some("/r/pkg"));
    }
}
