//! A tool's own fix for a finding, rendered as a diff: no model involved.
//!
//! [`tool_fix`] reads the fix the tool printed (kept in the finding's
//! `raw_json` by crafting-parsers), applies it to the file as it is at the
//! job's commit ([`Source`]) and renders the result with [`diff::unified`].
//! Only fixes the tool itself calls safe are taken:
//!
//! | tool | fix taken | positions |
//! |---|---|---|
//! | clippy, rustc | child suggestions whose spans are all `MachineApplicable` | 0-based byte offsets, checked against line and column |
//! | ruff | `fix.edits` (or the older inline `fix.content`) with applicability `safe` | 1-based row and character column, end exclusive |
//! | eslint | `fix` (not `suggestions`) | 0-based UTF-16 offsets |
//! | pip-audit | bumps `name==version` pins below the fixed version in `requirements*.txt` files in reach of the subproject; none when a pin carries hashes | — |
//!
//! Fixes a tool marks unsafe or only suggests (ruff's `unsafe`, rustc's
//! `MaybeIncorrect`, eslint's `suggestions`) are left to agents. Edits that
//! overlap, or positions that do not fit the file, give no fix rather than a
//! guess. Other ecosystems' advisories (cargo-audit's `Cargo.lock`,
//! govulncheck's `go.mod`) get no native fix for now: bumping them needs the
//! package manager to re-resolve the lock file.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use crafting_parsers::{Finding, Kind};
use regex::Regex;
use serde_json::Value;

use super::diff;

/// The repository's files at the job's commit.
pub trait Source {
    /// The UTF-8 content of a repository-relative file; `None` when it does
    /// not exist or is not text.
    fn read(&self, path: &str) -> Option<String>;
    /// Every file's repository-relative path, `/`-separated.
    fn list(&self) -> Vec<String>;
}

/// Files held in memory, keyed by repository-relative path.
impl Source for BTreeMap<String, String> {
    fn read(&self, path: &str) -> Option<String> {
        self.get(path).cloned()
    }

    fn list(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

/// A tool's fix as a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeFix {
    /// A unified diff with `diff --git` headers, one section per file.
    pub diff: String,
    /// One sentence naming the tool, the rule and what the fix does.
    pub explanation: String,
    /// The repository-relative files the diff changes.
    pub files: Vec<String>,
}

/// The tool's own fix for a finding, when the tool printed a safe one that
/// still fits the files. `subproject` is the folder the recipe ran in, `.`
/// or repository-relative.
pub fn tool_fix(finding: &Finding, subproject: &str, src: &dyn Source) -> Option<NativeFix> {
    match (finding.kind, finding.tool.as_str()) {
        (Kind::Lint, "clippy" | "rustc") => rust_fix(finding, subproject, src),
        (Kind::Lint, "ruff") => ruff_fix(finding, src),
        (Kind::Lint, "eslint") => eslint_fix(finding, src),
        (Kind::Cve, "pip-audit") => pip_fix(finding, subproject, src),
        _ => None,
    }
}

/// Whether the finding carries a fix [`tool_fix`] may turn into a diff,
/// judged from the finding alone (no file is read, so [`tool_fix`] can
/// still find that the fix no longer fits).
pub fn has_tool_fix(finding: &Finding) -> bool {
    let Some(raw) = &finding.raw_json else { return false };
    match (finding.kind, finding.tool.as_str()) {
        (Kind::Lint, "clippy" | "rustc") => {
            rust_groups(raw).iter().any(|g| g.machine && !g.edits.is_empty())
        }
        (Kind::Lint, "ruff") => ruff_edits(raw).is_some_and(|e| !e.is_empty()),
        (Kind::Lint, "eslint") => eslint_edit(raw).is_some(),
        (Kind::Cve, "pip-audit") => pip_target(finding).is_some(),
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Edits

/// One replacement in a file, in byte offsets.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Edit {
    start: usize,
    end: usize,
    text: String,
}

/// Applies edits to a text; `None` when one falls outside it, splits a
/// character, or overlaps another (exact duplicates count once).
fn apply_edits(content: &str, mut edits: Vec<Edit>) -> Option<String> {
    edits.sort();
    edits.dedup();
    let mut out = String::with_capacity(content.len());
    let mut at = 0;
    let mut last_insert: Option<usize> = None;
    for edit in &edits {
        let fits = edit.start <= edit.end
            && edit.end <= content.len()
            && content.is_char_boundary(edit.start)
            && content.is_char_boundary(edit.end);
        // Two insertions at one place have no order to apply them in.
        let clash = edit.start < at || (edit.start == edit.end && last_insert == Some(edit.start));
        if !fits || clash {
            return None;
        }
        out.push_str(&content[at..edit.start]);
        out.push_str(&edit.text);
        at = edit.end;
        last_insert = (edit.start == edit.end).then_some(edit.start);
    }
    out.push_str(&content[at..]);
    Some(out)
}

/// Applies edits to one file and renders the diff, or `None` when nothing
/// would change.
fn fix_file(path: &str, content: &str, edits: Vec<Edit>, explanation: String) -> Option<NativeFix> {
    let updated = apply_edits(content, edits)?;
    let diff = diff::unified(path, content, &updated);
    if diff.is_empty() {
        return None;
    }
    Some(NativeFix { diff, explanation, files: vec![path.to_owned()] })
}

/// The byte offset of a 1-based line and 1-based character column, where
/// lines end at `\n` only; the column may point just past the line's text.
fn offset_by_chars(content: &str, line: usize, column: usize) -> Option<usize> {
    let start = line_starts(content, false).get(line.checked_sub(1)?).copied()?;
    let text = content[start..].split('\n').next().unwrap_or_default();
    char_offset(text, column.checked_sub(1)?).map(|o| start + o)
}

/// Byte offsets where lines start. With `any_break`, `\r\n`, `\n` and a lone
/// `\r` all end a line (as ruff counts); otherwise only `\n` does. A final
/// entry for the end of the text follows when it ends with a break.
fn line_starts(content: &str, any_break: bool) -> Vec<usize> {
    let bytes = content.as_bytes();
    let mut starts = vec![0];
    for (i, b) in bytes.iter().enumerate() {
        let lone_cr = any_break && *b == b'\r' && bytes.get(i + 1) != Some(&b'\n');
        if *b == b'\n' || lone_cr {
            starts.push(i + 1);
        }
    }
    starts
}

/// The byte offset of the `n`th character of a line's text (`n` may equal
/// the character count: the end of the text).
fn char_offset(text: &str, n: usize) -> Option<usize> {
    text.char_indices().map(|(i, _)| i).chain(std::iter::once(text.len())).nth(n)
}

// ---------------------------------------------------------------------------
// clippy and rustc

/// One child suggestion of a rustc diagnostic: its message and spans.
struct Group {
    message: String,
    /// True when every span is `MachineApplicable`.
    machine: bool,
    edits: Vec<RustEdit>,
}

/// A suggested replacement from a rustc span.
struct RustEdit {
    file: String,
    start: usize,
    end: usize,
    /// 1-based line and character column of the start and end, when known.
    place: Option<[usize; 4]>,
    text: String,
}

/// Reads the suggestions of a clippy or rustc finding: the parser's
/// `suggestions` list (consecutive entries with one message form one child),
/// else a raw rustc diagnostic's `children[].spans[]`.
fn rust_groups(raw: &Value) -> Vec<Group> {
    if let Some(list) = raw.get("suggestions").and_then(Value::as_array) {
        return parser_groups(list);
    }
    let diagnostic = raw.get("message").filter(|m| m.is_object()).unwrap_or(raw);
    let children = diagnostic.get("children").and_then(Value::as_array);
    children.into_iter().flatten().filter_map(rustc_child_group).collect()
}

fn parser_groups(list: &[Value]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for s in list {
        let message = s.get("message").and_then(Value::as_str).unwrap_or_default();
        let machine = s.get("applicability").and_then(Value::as_str) == Some("MachineApplicable");
        let Some(edit) = rust_edit(s, "file", "replacement") else { continue };
        match groups.last_mut() {
            Some(g) if g.message == message => {
                g.machine &= machine;
                g.edits.push(edit);
            }
            _ => groups.push(Group { message: message.to_owned(), machine, edits: vec![edit] }),
        }
    }
    groups
}

fn rustc_child_group(child: &Value) -> Option<Group> {
    let spans = child.get("spans")?.as_array()?;
    let with_fix: Vec<&Value> = spans
        .iter()
        .filter(|s| s.get("suggested_replacement").is_some_and(Value::is_string))
        .collect();
    if with_fix.is_empty() {
        return None;
    }
    let machine = with_fix.iter().all(|s| {
        s.get("suggestion_applicability").and_then(Value::as_str) == Some("MachineApplicable")
    });
    let edits: Option<Vec<RustEdit>> =
        with_fix.iter().map(|s| rust_edit(s, "file_name", "suggested_replacement")).collect();
    let message = child.get("message").and_then(Value::as_str).unwrap_or_default().to_owned();
    Some(Group { message, machine, edits: edits? })
}

fn rust_edit(span: &Value, file_key: &str, text_key: &str) -> Option<RustEdit> {
    let num = |k: &str| span.get(k).and_then(Value::as_u64).map(|n| n as usize);
    let place = match (num("line_start"), num("column_start"), num("line_end"), num("column_end")) {
        (Some(a), Some(b), Some(c), Some(d)) => Some([a, b, c, d]),
        _ => None,
    };
    Some(RustEdit {
        file: span.get(file_key)?.as_str()?.to_owned(),
        start: num("byte_start")?,
        end: num("byte_end")?,
        place,
        text: span.get(text_key)?.as_str()?.to_owned(),
    })
}

/// Whether a span's file is the finding's file: equal, equal once joined to
/// the subproject (cargo's workspace root), or an absolute path ending in it.
fn same_file(span_file: &str, finding_file: &str, subproject: &str) -> bool {
    let span = span_file.replace('\\', "/");
    if span == finding_file {
        return true;
    }
    if span.starts_with('/') || span.get(1..2) == Some(":") {
        return span.ends_with(&format!("/{finding_file}"));
    }
    normalise(&format!("{subproject}/{span}")).as_deref() == Some(finding_file)
}

/// A `/`-separated path with `.` and empty parts removed and `..` resolved;
/// `None` when it climbs above its start.
fn normalise(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

fn rust_fix(finding: &Finding, subproject: &str, src: &dyn Source) -> Option<NativeFix> {
    let file = finding.file.as_deref()?;
    let groups = rust_groups(finding.raw_json.as_ref()?);
    // A child whose edits reach another file is left out whole: half of it
    // would not compile.
    let usable: Vec<&Group> = groups
        .iter()
        .filter(|g| g.machine && g.edits.iter().all(|e| same_file(&e.file, file, subproject)))
        .collect();
    if usable.is_empty() {
        return None;
    }
    let content = src.read(file)?;
    let mut edits = Vec::new();
    for edit in usable.iter().flat_map(|g| &g.edits) {
        // Byte offsets that disagree with the line and column mean the file
        // is not what rustc read (CRLF, a byte-order mark): no guessing.
        if let Some([line, column, line_end, column_end]) = edit.place
            && (offset_by_chars(&content, line, column) != Some(edit.start)
                || offset_by_chars(&content, line_end, column_end) != Some(edit.end))
        {
            return None;
        }
        edits.push(Edit { start: edit.start, end: edit.end, text: edit.text.clone() });
    }
    let mut what: Vec<&str> = usable.iter().map(|g| g.message.as_str()).collect();
    what.dedup();
    let explanation = format!(
        "Applies {}'s machine-applicable suggestion for `{}`: {}.",
        finding.tool,
        finding.code,
        what.join("; ")
    );
    fix_file(file, &content, edits, explanation)
}

// ---------------------------------------------------------------------------
// ruff

/// A ruff edit: 1-based rows and character columns, end exclusive.
struct RuffEdit {
    start: (usize, usize),
    end: (usize, usize),
    text: String,
}

/// The edits of a ruff fix ruff calls safe. Releases before applicability
/// existed applied every fix with `--fix`; `Automatic` is the older name of
/// `safe`. Notebook findings (`cell`) are skipped: their rows count per cell.
fn ruff_edits(raw: &Value) -> Option<Vec<RuffEdit>> {
    if raw.get("cell").is_some_and(|c| !c.is_null()) {
        return None;
    }
    let fix = raw.get("fix").filter(|f| f.is_object())?;
    match fix.get("applicability").and_then(Value::as_str) {
        None | Some("safe" | "Automatic") => {}
        Some(_) => return None,
    }
    let mut edits = Vec::new();
    if let Some(list) = fix.get("edits").and_then(Value::as_array) {
        for e in list {
            edits.push(ruff_edit(e)?);
        }
    }
    if fix.get("location").is_some() {
        edits.push(ruff_edit(fix)?);
    }
    Some(edits)
}

fn ruff_edit(e: &Value) -> Option<RuffEdit> {
    let at = |key: &str| {
        let loc = e.get(key)?;
        let row = loc.get("row")?.as_u64()? as usize;
        let column = loc.get("column")?.as_u64()? as usize;
        Some((row, column))
    };
    let text = e.get("content").and_then(Value::as_str).unwrap_or_default().to_owned();
    Some(RuffEdit { start: at("location")?, end: at("end_location")?, text })
}

/// The byte offset of a ruff row and column. Rows end at `\n`, `\r\n` or a
/// lone `\r`; row `n + 1`, column 1 is the end of a file of `n` rows.
fn ruff_offset(content: &str, starts: &[usize], (row, column): (usize, usize)) -> Option<usize> {
    let start = *starts.get(row.checked_sub(1)?)?;
    let next = starts.get(row).copied().unwrap_or(content.len());
    let text = content[start..next].trim_end_matches(['\n', '\r']);
    if start == content.len() {
        return (column == 1).then_some(start);
    }
    char_offset(text, column.checked_sub(1)?).map(|o| start + o)
}

fn ruff_fix(finding: &Finding, src: &dyn Source) -> Option<NativeFix> {
    let file = finding.file.as_deref()?;
    let raw = finding.raw_json.as_ref()?;
    let ruff = ruff_edits(raw)?;
    if ruff.is_empty() {
        return None;
    }
    let content = src.read(file)?;
    let starts = line_starts(&content, true);
    let mut edits = Vec::new();
    for e in ruff {
        let start = ruff_offset(&content, &starts, e.start)?;
        let end = ruff_offset(&content, &starts, e.end)?;
        edits.push(Edit { start, end, text: e.text });
    }
    let what = raw.pointer("/fix/message").and_then(Value::as_str).unwrap_or("apply the fix");
    let explanation = format!("Applies ruff's safe fix for {}: {what}.", finding.code);
    fix_file(file, &content, edits, explanation)
}

// ---------------------------------------------------------------------------
// eslint

/// eslint's automatic fix: a UTF-16 range and its replacement.
fn eslint_edit(raw: &Value) -> Option<(usize, usize, String)> {
    let fix = raw.get("fix")?;
    let range = fix.get("range")?.as_array()?;
    let [start, end] = range.as_slice() else { return None };
    let text = fix.get("text").and_then(Value::as_str).unwrap_or_default().to_owned();
    Some((start.as_u64()? as usize, end.as_u64()? as usize, text))
}

/// The byte offset of a UTF-16 code unit offset; `None` inside a surrogate
/// pair or past the end.
fn utf16_to_byte(text: &str, units: usize) -> Option<usize> {
    let mut count = 0;
    for (i, c) in text.char_indices() {
        if count == units {
            return Some(i);
        }
        count += c.len_utf16();
        if count > units {
            return None;
        }
    }
    (count == units).then_some(text.len())
}

fn eslint_fix(finding: &Finding, src: &dyn Source) -> Option<NativeFix> {
    let file = finding.file.as_deref()?;
    let (start, end, text) = eslint_edit(finding.raw_json.as_ref()?)?;
    let content = src.read(file)?;
    // eslint reads the text without its byte-order mark.
    let skip = if content.starts_with('\u{feff}') { '\u{feff}'.len_utf8() } else { 0 };
    let body = &content[skip..];
    let edit = Edit {
        start: skip + utf16_to_byte(body, start)?,
        end: skip + utf16_to_byte(body, end)?,
        text,
    };
    let said = finding.message.lines().next().unwrap_or_default().trim_end_matches('.');
    let explanation = format!("Applies eslint's automatic fix for {}: {said}.", finding.code);
    fix_file(file, &content, vec![edit], explanation)
}

// ---------------------------------------------------------------------------
// pip-audit

/// A `name[extras] == version` pin: indent and name, the version, the rest.
static PIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==\s*)([A-Za-z0-9][A-Za-z0-9.+!_-]*)([^\n]*)$",
    )
    .expect("valid pin pattern")
});

/// What a pip-audit finding asks for: the package and the version to pin.
#[derive(Debug, PartialEq, Eq)]
struct PipTarget {
    package: String,
    fixed: String,
}

/// Reads the package and the fixed version: the version the parser chose
/// (`bump <package> to <version>`), else the lowest `fix_versions` entry not
/// below the installed version.
fn pip_target(finding: &Finding) -> Option<PipTarget> {
    let raw = finding.raw_json.as_ref()?;
    let package = raw.get("package")?.as_str()?.to_owned();
    let chosen = finding
        .suggested_fix
        .as_deref()
        .and_then(|s| s.strip_prefix(&format!("bump {package} to ")))
        .map(str::to_owned);
    let fixed = chosen.or_else(|| {
        let installed = raw.get("version").and_then(Value::as_str).map(version_key);
        let mut versions: Vec<&str> =
            raw.get("fix_versions")?.as_array()?.iter().filter_map(Value::as_str).collect();
        versions.sort_by_key(|v| version_key(v));
        let above =
            versions.iter().find(|v| installed.as_ref().is_none_or(|i| &version_key(v) >= i));
        above.or(versions.first()).map(|v| (*v).to_owned())
    })?;
    Some(PipTarget { package, fixed })
}

/// PEP 503 name normalisation: lower case, runs of `-`, `_`, `.` as one `-`.
fn normalise_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// A version as numbers for ordering: `0.12.3` is `[0, 12, 3]`, below
/// `1.0`, which is `[1]` (trailing zeros dropped, so `1.0` equals `1`).
/// Parts that are not numbers count as 0.
fn version_key(v: &str) -> Vec<u64> {
    let mut key: Vec<u64> = v
        .split(['.', '-', '+'])
        .map(|p| {
            p.chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap_or(0)
        })
        .collect();
    while key.last() == Some(&0) {
        key.pop();
    }
    key
}

/// Whether a file is a pip requirements file the recipe in `subproject` may
/// read: named `requirements*.txt` (or a `.txt` in a `requirements` folder),
/// inside the subproject or in a folder above it.
fn is_requirements_file(path: &str, subproject: &str) -> bool {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let named = (name.starts_with("requirements") && name.ends_with(".txt"))
        || (name.ends_with(".txt") && dir.rsplit('/').next() == Some("requirements"));
    if !named {
        return false;
    }
    let sub = normalise(subproject).unwrap_or_default();
    if sub.is_empty() || path.starts_with(&format!("{sub}/")) {
        return true;
    }
    let folder = if dir.rsplit('/').next() == Some("requirements") {
        dir.rsplit_once('/').map_or("", |(d, _)| d)
    } else {
        dir
    };
    folder.is_empty() || sub.starts_with(&format!("{folder}/"))
}

/// Bumps every pin of the package below the fixed version. `None` when a
/// pin carries hashes (`--hash`, or a `\` continuation): those need new
/// hashes, which only pip can compute.
fn bump_pins(content: &str, target: &PipTarget) -> Option<String> {
    let wanted = normalise_name(&target.package);
    let fixed = version_key(&target.fixed);
    let mut out = String::with_capacity(content.len() + 8);
    for line in content.split_inclusive('\n') {
        let (body, ending) = split_ending(line);
        let Some(caps) = PIN.captures(body) else {
            out.push_str(line);
            continue;
        };
        let rest = &caps[4];
        let pinned_below = normalise_name(&caps[2]) == wanted
            && version_key(&caps[3]) < fixed
            && (rest.is_empty() || rest.starts_with([' ', '\t', ';', '#']));
        if !pinned_below {
            out.push_str(line);
            continue;
        }
        if rest.contains("--hash") || rest.trim_end().ends_with('\\') {
            return None;
        }
        out.push_str(&format!("{}{}{rest}{ending}", &caps[1], target.fixed));
    }
    Some(out)
}

/// A line's text and its ending (`\n`, `\r\n` or none).
fn split_ending(line: &str) -> (&str, &str) {
    for ending in ["\r\n", "\n"] {
        if let Some(body) = line.strip_suffix(ending) {
            return (body, ending);
        }
    }
    (line, "")
}

fn pip_fix(finding: &Finding, subproject: &str, src: &dyn Source) -> Option<NativeFix> {
    let target = pip_target(finding)?;
    let mut files = src.list();
    files.retain(|f| is_requirements_file(f, subproject));
    files.sort();
    let mut diffs = String::new();
    let mut changed = Vec::new();
    for path in files {
        let Some(content) = src.read(&path) else { continue };
        let updated = bump_pins(&content, &target)?;
        let piece = diff::unified(&path, &content, &updated);
        if !piece.is_empty() {
            diffs.push_str(&piece);
            changed.push(path);
        }
    }
    if changed.is_empty() {
        return None;
    }
    let explanation = format!(
        "Pins {} to {} in {} to fix {} reported by pip-audit.",
        target.package,
        target.fixed,
        changed.join(", "),
        finding.code
    );
    Some(NativeFix { diff: diffs, explanation, files: changed })
}

#[cfg(test)]
mod tests;
