//! `pip-audit -f json` reports.
//!
//! Current releases print `{"dependencies": [...], "fixes": [...]}`, older ones
//! a bare array of dependencies. Each vulnerability of each dependency is a
//! `cve` coded by its id (`PYSEC-...`, `GHSA-...`), with its aliases kept in
//! `raw_json`. pip-audit prints no CVSS score, so severity is `error` unless
//! a record carries a numeric `cvss`/`score` field. The fix is the lowest
//! `fix_versions` entry above the installed version. There is no file: the
//! requirement may come from any of several manifests, so none is claimed.

use serde::Deserialize;
use serde_json::{Value, json};

use super::cargo_audit::cve_severity;
use super::pick_fix_version;
use crate::finding::{Finding, Kind};
use crate::registry::{ParseContext, Session};

#[derive(Deserialize)]
struct Dependency {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    vulns: Vec<Value>,
}

#[derive(Deserialize)]
struct Vuln {
    id: String,
    #[serde(default)]
    fix_versions: Vec<String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    description: Option<String>,
}

/// Reads pip-audit's JSON.
pub(crate) struct PipAuditSession;

impl PipAuditSession {
    pub(crate) fn new(_ctx: &ParseContext) -> Self {
        PipAuditSession
    }
}

fn is_dependency(v: &Value) -> bool {
    v.get("name").is_some() && (v.get("vulns").is_some() || v.get("skip_reason").is_some())
}

fn score(v: &Value) -> Option<f64> {
    ["cvss", "score"].iter().find_map(|k| v.get(*k).and_then(Value::as_f64))
}

impl Session for PipAuditSession {
    fn json(&mut self, doc: &Value, out: &mut Vec<Finding>) {
        let deps = match doc {
            Value::Object(map) => match map.get("dependencies").and_then(Value::as_array) {
                Some(d) => d,
                None => return,
            },
            Value::Array(items) => items,
            _ => return,
        };
        if !deps.first().is_some_and(is_dependency) {
            return;
        }
        for dep in deps {
            let Ok(dep) = Dependency::deserialize(dep) else { continue };
            for raw in &dep.vulns {
                let Ok(vuln) = Vuln::deserialize(raw) else { continue };
                let fix = pick_fix_version(
                    vuln.fix_versions.iter().map(String::as_str),
                    dep.version.as_deref(),
                )
                .map(|v| format!("bump {} to {v}", dep.name));
                let summary = vuln
                    .description
                    .as_deref()
                    .and_then(|d| d.lines().find(|l| !l.trim().is_empty()))
                    .map(|l| super::truncate(l.trim(), 300).to_owned());
                let version = dep.version.as_deref().unwrap_or("?");
                let message = match summary {
                    Some(s) => format!("{} {version}: {s}", dep.name),
                    None => format!("{} {version} is affected by {}", dep.name, vuln.id),
                };
                let record = json!({
                    "package": dep.name,
                    "version": dep.version,
                    "id": vuln.id,
                    "aliases": vuln.aliases,
                    "fix_versions": vuln.fix_versions,
                    "vuln": raw,
                });
                out.push(
                    Finding::new(
                        Kind::Cve,
                        cve_severity(score(raw)),
                        "pip-audit",
                        &vuln.id,
                        message,
                    )
                    .with_fix(fix)
                    .with_raw(record),
                );
            }
        }
    }
}
