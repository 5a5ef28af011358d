//! SARIF 2.1.0 documents (semgrep `--sarif`, eslint's SARIF formatter,
//! clippy-sarif, CodeQL and others) printed into the log.
//!
//! Every result becomes a `lint` coded by its rule id, from the tool named by
//! `runs[].tool.driver.name` (lower-cased). Level: `error` -> error,
//! `warning` -> warn, `note` and `none` -> info; a result without a level
//! takes its rule's default, else `warning`. The first location gives the
//! place: a `file://` URI or a path relative to the work dir (or to the
//! run's `originalUriBaseIds` entry when the tool gives one). Regions are
//! 1-based; SARIF counts columns in UTF-16 code units unless the run says
//! otherwise, stored as is. Fixes become `suggested_fix`; the result object
//! is kept in `raw_json`.

use std::collections::HashMap;

use serde_json::Value;

use super::{as_u32, str_field};
use crate::finding::{Finding, Kind, Severity};
use crate::paths::{PathMapper, percent_decode};
use crate::registry::{ParseContext, Session};

/// Reads SARIF documents.
pub(crate) struct SarifSession {
    paths: PathMapper,
}

impl SarifSession {
    pub(crate) fn new(ctx: &ParseContext) -> Self {
        SarifSession { paths: PathMapper::new(ctx) }
    }

    fn run(&self, run: &Value, out: &mut Vec<Finding>) {
        let driver = run.pointer("/tool/driver");
        let tool = driver
            .and_then(|d| str_field(d, "name"))
            .map(|n| n.to_ascii_lowercase().replace(' ', "-"))
            .unwrap_or_else(|| "sarif".to_owned());
        let rules: Vec<&Value> = driver
            .and_then(|d| d.get("rules"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect();
        let default_levels: HashMap<&str, &str> = rules
            .iter()
            .filter_map(|r| {
                let id = str_field(r, "id")?;
                let level = r.pointer("/defaultConfiguration/level").and_then(Value::as_str)?;
                Some((id, level))
            })
            .collect();
        let bases: HashMap<&str, String> = run
            .get("originalUriBaseIds")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.as_str(), str_field(v, "uri")?.to_owned())))
            .collect();
        for result in run.get("results").and_then(Value::as_array).into_iter().flatten() {
            let rule_id = str_field(result, "ruleId")
                .or_else(|| result.pointer("/rule/id").and_then(Value::as_str))
                .or_else(|| {
                    let index = result.get("ruleIndex").and_then(Value::as_u64)?;
                    rules.get(usize::try_from(index).ok()?).and_then(|r| str_field(r, "id"))
                })
                .unwrap_or("sarif");
            let level = str_field(result, "level")
                .or_else(|| default_levels.get(rule_id).copied())
                .unwrap_or("warning");
            let severity = match level {
                "error" => Severity::Error,
                "warning" => Severity::Warn,
                _ => Severity::Info,
            };
            let message = result
                .pointer("/message/text")
                .or_else(|| result.pointer("/message/markdown"))
                .and_then(Value::as_str)
                .unwrap_or(rule_id)
                .to_owned();
            let physical = result.pointer("/locations/0/physicalLocation");
            let artifact = physical.and_then(|p| p.get("artifactLocation"));
            let file = artifact.and_then(|a| {
                let uri = percent_decode(str_field(a, "uri")?);
                match str_field(a, "uriBaseId").and_then(|b| bases.get(b)) {
                    Some(base) if !uri.starts_with("file:") => {
                        let base = percent_decode(base);
                        self.paths.map_from(&uri, base.strip_prefix("file://").unwrap_or(&base))
                    }
                    _ => self.paths.map(&uri),
                }
            });
            let region = physical.and_then(|p| p.get("region"));
            let line = region.and_then(|r| r.get("startLine")).and_then(as_u32);
            let column = region.and_then(|r| r.get("startColumn")).and_then(as_u32);
            let fix = describe_fixes(result);
            out.push(
                Finding::new(Kind::Lint, severity, &tool, rule_id, message)
                    .at(file, line, column)
                    .with_fix(fix)
                    .with_raw(result.clone()),
            );
        }
        self.notifications(run, &tool, out);
    }

    /// Tool notifications that point into a file (eslint reports parse
    /// errors this way) at level `error` or `warning`.
    fn notifications(&self, run: &Value, tool: &str, out: &mut Vec<Finding>) {
        let invocations = run.get("invocations").and_then(Value::as_array).into_iter().flatten();
        for invocation in invocations {
            for key in ["toolConfigurationNotifications", "toolExecutionNotifications"] {
                for n in invocation.get(key).and_then(Value::as_array).into_iter().flatten() {
                    let severity = match str_field(n, "level").unwrap_or("warning") {
                        "error" => Severity::Error,
                        "warning" => Severity::Warn,
                        _ => continue,
                    };
                    let physical = n.pointer("/locations/0/physicalLocation");
                    let uri = physical.and_then(|p| p.pointer("/artifactLocation/uri"));
                    let Some(file) = uri
                        .and_then(Value::as_str)
                        .and_then(|u| self.paths.map(&percent_decode(u)))
                    else {
                        continue;
                    };
                    let region = physical.and_then(|p| p.get("region"));
                    let line = region.and_then(|r| r.get("startLine")).and_then(as_u32);
                    let column = region.and_then(|r| r.get("startColumn")).and_then(as_u32);
                    let code = n
                        .pointer("/descriptor/id")
                        .and_then(Value::as_str)
                        .unwrap_or("notification");
                    let message =
                        n.pointer("/message/text").and_then(Value::as_str).unwrap_or(code);
                    out.push(
                        Finding::new(Kind::Lint, severity, tool, code, message)
                            .at(Some(file), line, column)
                            .with_raw(n.clone()),
                    );
                }
            }
        }
    }
}

/// Describes a result's `fixes` as text.
fn describe_fixes(result: &Value) -> Option<String> {
    let fix = result.pointer("/fixes/0")?;
    let mut edits = Vec::new();
    for change in fix.get("artifactChanges").and_then(Value::as_array).into_iter().flatten() {
        for rep in change.get("replacements").and_then(Value::as_array).into_iter().flatten() {
            let region = rep.get("deletedRegion");
            let at = |k: &str| region.and_then(|r| r.get(k)).and_then(as_u32);
            let place = match (at("startLine"), at("startColumn"), at("charOffset")) {
                (Some(l), c, _) => format!("{l}:{}", c.unwrap_or(1)),
                (None, _, Some(off)) => format!("offset {off}"),
                _ => "region".to_owned(),
            };
            let text = rep.pointer("/insertedContent/text").and_then(Value::as_str).unwrap_or("");
            edits.push(format!("replace {place} with `{text}`"));
        }
    }
    let what = fix.pointer("/description/text").and_then(Value::as_str).unwrap_or("fix");
    if edits.is_empty() { None } else { Some(format!("{what}: {}", edits.join("; "))) }
}

impl Session for SarifSession {
    fn json(&mut self, doc: &Value, out: &mut Vec<Finding>) {
        let Some(runs) = doc.get("runs").and_then(Value::as_array) else { return };
        let version = str_field(doc, "version").unwrap_or("");
        let schema = str_field(doc, "$schema").unwrap_or("");
        if !version.starts_with("2.") && !schema.contains("sarif") {
            return;
        }
        for run in runs {
            self.run(run, out);
        }
    }
}
