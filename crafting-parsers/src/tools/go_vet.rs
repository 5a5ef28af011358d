//! `go vet -json`: after each `# package` line, a JSON object mapping the
//! package to its analyzers and each analyzer to a list of diagnostics
//! (`{"posn": "file:line:col", "message": ..., "suggested_fixes": ...}`) or
//! to `{"error": ...}` when the analysis failed (skipped here).
//!
//! Each diagnostic is a `lint` at `warn` coded by the analyzer (`printf`,
//! `copylocks`). `posn` columns are 1-based byte offsets within the line;
//! without the source they cannot be turned into characters, so they are
//! stored as printed (they agree for ASCII lines).

use serde::Deserialize;
use serde_json::Value;

use crate::finding::{Finding, Kind, Severity};
use crate::paths::PathMapper;
use crate::registry::{ParseContext, Session};

#[derive(Deserialize)]
struct VetDiagnostic {
    posn: String,
    message: String,
    #[serde(default)]
    suggested_fixes: Vec<SuggestedFix>,
}

#[derive(Deserialize)]
struct SuggestedFix {
    #[serde(default)]
    message: String,
    #[serde(default)]
    edits: Vec<VetEdit>,
}

/// Byte offsets into `filename`.
#[derive(Deserialize)]
struct VetEdit {
    #[serde(default)]
    filename: String,
    #[serde(default)]
    start: u64,
    #[serde(default)]
    end: u64,
    #[serde(default)]
    new: String,
}

/// Splits `path:line:col` (or `path:line`) from the right, so that paths
/// with colons (Windows drives) survive.
pub(crate) fn split_posn(posn: &str) -> (&str, Option<u32>, Option<u32>) {
    let Some((head, last)) = posn.rsplit_once(':') else { return (posn, None, None) };
    let Ok(last) = last.parse::<u32>() else { return (posn, None, None) };
    if let Some((path, mid)) = head.rsplit_once(':')
        && let Ok(line) = mid.parse::<u32>()
    {
        return (path, Some(line), Some(last));
    }
    (head, Some(last), None)
}

/// Reads `go vet -json` documents.
pub(crate) struct VetSession {
    paths: PathMapper,
}

impl VetSession {
    pub(crate) fn new(ctx: &ParseContext) -> Self {
        VetSession { paths: PathMapper::new(ctx) }
    }
}

/// Whether a document has the package -> analyzer -> diagnostics shape.
fn is_vet(doc: &Value) -> bool {
    let Some(packages) = doc.as_object() else { return false };
    let mut seen = false;
    for analyzers in packages.values() {
        let Some(analyzers) = analyzers.as_object() else { return false };
        for result in analyzers.values() {
            match result {
                Value::Array(list) => {
                    if !list.iter().all(|d| d.get("posn").is_some()) {
                        return false;
                    }
                    seen = true;
                }
                Value::Object(o) if o.contains_key("error") => seen = true,
                _ => return false,
            }
        }
    }
    seen
}

impl Session for VetSession {
    fn json(&mut self, doc: &Value, out: &mut Vec<Finding>) {
        if !is_vet(doc) {
            return;
        }
        let Some(packages) = doc.as_object() else { return };
        for analyzers in packages.values() {
            let Some(analyzers) = analyzers.as_object() else { continue };
            for (analyzer, list) in analyzers {
                for raw in list.as_array().into_iter().flatten() {
                    let Ok(d) = VetDiagnostic::deserialize(raw) else { continue };
                    let (path, line, column) = split_posn(&d.posn);
                    let Some(file) = self.paths.map(path) else { continue };
                    let fix = d
                        .suggested_fixes
                        .iter()
                        .map(|f| {
                            let edits: Vec<String> = f
                                .edits
                                .iter()
                                .map(|e| {
                                    let name = self.paths.map(&e.filename).unwrap_or_default();
                                    format!(
                                        "replace bytes {}..{} of {name} with `{}`",
                                        e.start, e.end, e.new
                                    )
                                })
                                .collect();
                            format!("{}: {}", f.message, edits.join("; "))
                        })
                        .next();
                    out.push(
                        Finding::new(Kind::Lint, Severity::Warn, "go-vet", analyzer, d.message)
                            .at(Some(file), line, column)
                            .with_fix(fix)
                            .with_raw(raw.clone()),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posn_splits_from_the_right() {
        assert_eq!(split_posn("/a/b.go:12:3"), ("/a/b.go", Some(12), Some(3)));
        assert_eq!(split_posn(r"C:\a\b.go:12:3"), (r"C:\a\b.go", Some(12), Some(3)));
        assert_eq!(split_posn("b.go:7"), ("b.go", Some(7), None));
        assert_eq!(split_posn(r"C:\a\b.go:7"), (r"C:\a\b.go", Some(7), None));
        assert_eq!(split_posn("nowhere"), ("nowhere", None, None));
    }
}
