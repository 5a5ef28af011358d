//! `cargo audit --json` reports.
//!
//! Each entry of `vulnerabilities.list` becomes a `cve` whose code is the
//! advisory id, at the `Cargo.lock` of the work dir. Severity comes from the
//! advisory's CVSS v3 vector, whose base score is computed here; advisories
//! without a vector, or with a CVSS v4 vector (not scored here), count as
//! `error`. Entries under `warnings` (unmaintained, unsound, yanked, notice)
//! are no known vulnerability: they become `lint` findings at `warn`, coded
//! by their advisory id, or `yanked:<crate>` for a yanked crate.

use serde::Deserialize;
use serde_json::Value;

use super::pick_fix_version;
use crate::finding::{Finding, Kind, Severity};
use crate::paths::PathMapper;
use crate::registry::{ParseContext, Session};

#[derive(Deserialize)]
struct Report {
    vulnerabilities: Vulnerabilities,
    #[serde(default)]
    warnings: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
struct Vulnerabilities {
    #[serde(default)]
    list: Vec<Value>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    advisory: Option<Advisory>,
    #[serde(default)]
    versions: Option<Versions>,
    package: Package,
    #[serde(default)]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Advisory {
    id: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    cvss: Option<String>,
}

#[derive(Deserialize)]
struct Versions {
    #[serde(default)]
    patched: Vec<String>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    #[serde(default)]
    version: String,
}

/// Maps a CVSS base score onto the severity scale; `None` (no score) is `error`.
pub(crate) fn cve_severity(score: Option<f64>) -> Severity {
    match score {
        Some(s) if s >= 9.0 => Severity::Critical,
        Some(s) if s >= 7.0 => Severity::Error,
        Some(_) => Severity::Warn,
        None => Severity::Error,
    }
}

/// The base score of a CVSS v3.0/v3.1 vector (`CVSS:3.1/AV:N/AC:L/...`).
pub(crate) fn cvss3_base_score(vector: &str) -> Option<f64> {
    let mut parts = vector.split('/');
    let version = parts.next()?;
    if version != "CVSS:3.1" && version != "CVSS:3.0" {
        return None;
    }
    let metric = |name: &str| -> Option<&str> {
        vector.split('/').find_map(|p| p.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
    };
    let changed = match metric("S")? {
        "U" => false,
        "C" => true,
        _ => return None,
    };
    let av = match metric("AV")? {
        "N" => 0.85,
        "A" => 0.62,
        "L" => 0.55,
        "P" => 0.2,
        _ => return None,
    };
    let ac = match metric("AC")? {
        "L" => 0.77,
        "H" => 0.44,
        _ => return None,
    };
    let pr = match (metric("PR")?, changed) {
        ("N", _) => 0.85,
        ("L", false) => 0.62,
        ("L", true) => 0.68,
        ("H", false) => 0.27,
        ("H", true) => 0.5,
        _ => return None,
    };
    let ui = match metric("UI")? {
        "N" => 0.85,
        "R" => 0.62,
        _ => return None,
    };
    let cia = |v: &str| match v {
        "H" => Some(0.56),
        "L" => Some(0.22),
        "N" => Some(0.0),
        _ => None,
    };
    let c = cia(metric("C")?)?;
    let i = cia(metric("I")?)?;
    let a = cia(metric("A")?)?;
    let iss = 1.0 - (1.0 - c) * (1.0 - i) * (1.0 - a);
    let impact =
        if changed { 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02_f64).powi(15) } else { 6.42 * iss };
    if impact <= 0.0 {
        return Some(0.0);
    }
    let exploitability = 8.22 * av * ac * pr * ui;
    let raw = if changed { 1.08 * (impact + exploitability) } else { impact + exploitability };
    Some(round_up(raw.min(10.0)))
}

/// CVSS v3.1 "round up": the smallest one-decimal number not below `x`,
/// computed on integers to avoid floating point surprises.
fn round_up(x: f64) -> f64 {
    let scaled = (x * 100_000.0).round() as i64;
    if scaled % 10_000 == 0 {
        scaled as f64 / 100_000.0
    } else {
        ((scaled / 10_000) + 1) as f64 / 10.0
    }
}

/// Reads `cargo audit --json` documents.
pub(crate) struct AuditSession {
    paths: PathMapper,
}

impl AuditSession {
    pub(crate) fn new(ctx: &ParseContext) -> Self {
        AuditSession { paths: PathMapper::new(ctx) }
    }

    fn lockfile(&self) -> Option<String> {
        self.paths.map("Cargo.lock")
    }
}

impl Session for AuditSession {
    fn json(&mut self, doc: &Value, out: &mut Vec<Finding>) {
        if doc.get("vulnerabilities").is_none() || doc.get("database").is_none() {
            return;
        }
        let Ok(report) = Report::deserialize(doc) else { return };
        for raw in report.vulnerabilities.list {
            let Ok(entry) = Entry::deserialize(&raw) else { continue };
            let Some(advisory) = &entry.advisory else { continue };
            let score = advisory.cvss.as_deref().and_then(cvss3_base_score);
            let patched = entry.versions.as_ref().map(|v| &v.patched);
            let fix = patched
                .and_then(|p| {
                    pick_fix_version(p.iter().map(String::as_str), Some(&entry.package.version))
                })
                .map(|v| format!("bump {} to {v}", entry.package.name));
            let message = format!(
                "{} ({} {})",
                if advisory.title.is_empty() { &advisory.id } else { &advisory.title },
                entry.package.name,
                entry.package.version
            );
            out.push(
                Finding::new(Kind::Cve, cve_severity(score), "cargo-audit", &advisory.id, message)
                    .at(self.lockfile(), None, None)
                    .with_fix(fix)
                    .with_raw(raw.clone()),
            );
        }
        for (group, entries) in &report.warnings {
            for raw in entries.as_array().into_iter().flatten() {
                let Ok(entry) = Entry::deserialize(raw) else { continue };
                let kind = entry.kind.clone().unwrap_or_else(|| group.clone());
                let pkg = &entry.package;
                let (code, message) = match &entry.advisory {
                    Some(a) => (
                        a.id.clone(),
                        format!("{} {} is {kind}: {}", pkg.name, pkg.version, a.title),
                    ),
                    None => (
                        format!("{kind}:{}", pkg.name),
                        format!("{} {} is {kind}", pkg.name, pkg.version),
                    ),
                };
                out.push(
                    Finding::new(Kind::Lint, Severity::Warn, "cargo-audit", code, message)
                        .at(self.lockfile(), None, None)
                        .with_raw(raw.clone()),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cvss3_scores_match_the_specification_examples() {
        let s = |v| cvss3_base_score(v);
        assert_eq!(s("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"), Some(9.8));
        assert_eq!(s("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"), Some(10.0));
        assert_eq!(s("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"), Some(7.5));
        // 6.42 * 0.22 + 8.22 * 0.55 * 0.44 * 0.62 * 0.62 = 2.177, rounded up.
        assert_eq!(s("CVSS:3.0/AV:L/AC:H/PR:L/UI:R/S:U/C:L/I:N/A:N"), Some(2.2));
        assert_eq!(s("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"), Some(6.1));
        assert_eq!(s("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N"), Some(0.0));
        assert_eq!(s("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"), None);
        assert_eq!(s("garbage"), None);
    }

    #[test]
    fn severity_follows_the_score_bands() {
        assert_eq!(cve_severity(Some(9.0)), Severity::Critical);
        assert_eq!(cve_severity(Some(7.0)), Severity::Error);
        assert_eq!(cve_severity(Some(6.9)), Severity::Warn);
        assert_eq!(cve_severity(None), Severity::Error);
    }
}
