//! Findings out as a SARIF 2.1.0 log, in the shape GitHub code scanning
//! accepts.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::finding::{Finding, Kind, Severity};
use crate::paths::percent_encode_path;

/// The tool a SARIF log names as its producer.
#[derive(Debug, Clone)]
pub struct SarifTool {
    /// `runs[0].tool.driver.name`.
    pub name: String,
    /// `runs[0].tool.driver.version`, when known.
    pub version: Option<String>,
    /// `runs[0].tool.driver.informationUri`, when known.
    pub information_uri: Option<String>,
}

impl SarifTool {
    /// A tool with a name only.
    pub fn new(name: &str) -> Self {
        SarifTool { name: name.to_owned(), version: None, information_uri: None }
    }
}

/// The key under `partialFingerprints` that carries [`Finding::fingerprint`].
pub const FINGERPRINT_KEY: &str = "craftingFingerprint/v1";

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::Error => "error",
        Severity::Warn => "warning",
        Severity::Info => "note",
    }
}

/// GitHub ranks security results by a `security-severity` score on the rule.
fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::Error => "8.0",
        Severity::Warn => "5.0",
        Severity::Info => "2.0",
    }
}

/// Builds one SARIF 2.1.0 run from findings. Rules are the distinct codes;
/// each result carries its rule id, level (`critical` and `error` ->
/// `error`, `warn` -> `warning`, `info` -> `note`), message, location when
/// the file is known (URI relative to `%SRCROOT%`, the repository root; a
/// region only with a known line, a column only with a known column,
/// counted in Unicode code points), the fingerprint under
/// [`FINGERPRINT_KEY`] and the kind, tool and suggested fix as properties.
pub fn to_sarif(findings: &[Finding], tool: &SarifTool) -> Value {
    let mut rule_index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut rules: Vec<Value> = Vec::new();
    let mut results = Vec::with_capacity(findings.len());
    for f in findings {
        let code = if f.code.is_empty() { "unknown" } else { f.code.as_str() };
        let index = *rule_index.entry(code).or_insert_with(|| {
            let mut properties = Map::new();
            properties.insert("tags".into(), json!([f.kind.as_str(), f.tool]));
            if f.kind == Kind::Cve {
                properties.insert("security-severity".into(), json!(security_severity(f.severity)));
            }
            rules.push(json!({
                "id": code,
                "name": code,
                "shortDescription": {"text": short(&f.message, code)},
                "defaultConfiguration": {"level": level(f.severity)},
                "properties": properties,
            }));
            rules.len() - 1
        });
        let mut result = Map::new();
        result.insert("ruleId".into(), json!(code));
        result.insert("ruleIndex".into(), json!(index));
        result.insert("level".into(), json!(level(f.severity)));
        let text = if f.message.trim().is_empty() { code.to_owned() } else { f.message.clone() };
        result.insert("message".into(), json!({"text": text}));
        if let Some(file) = &f.file {
            let mut physical = Map::new();
            physical.insert(
                "artifactLocation".into(),
                json!({"uri": percent_encode_path(file), "uriBaseId": "%SRCROOT%"}),
            );
            if let Some(line) = f.line {
                let mut region = Map::new();
                region.insert("startLine".into(), json!(line));
                if let Some(column) = f.column {
                    region.insert("startColumn".into(), json!(column));
                }
                physical.insert("region".into(), Value::Object(region));
            }
            result.insert("locations".into(), json!([{"physicalLocation": physical}]));
        }
        result.insert("partialFingerprints".into(), json!({FINGERPRINT_KEY: f.fingerprint}));
        let mut properties = Map::new();
        properties.insert("kind".into(), json!(f.kind.as_str()));
        properties.insert("severity".into(), json!(f.severity.as_str()));
        properties.insert("tool".into(), json!(f.tool));
        if let Some(fix) = &f.suggested_fix {
            properties.insert("suggestedFix".into(), json!(fix));
        }
        result.insert("properties".into(), Value::Object(properties));
        results.push(Value::Object(result));
    }
    let mut driver = Map::new();
    driver.insert("name".into(), json!(tool.name));
    if let Some(v) = &tool.version {
        driver.insert("version".into(), json!(v));
    }
    if let Some(uri) = &tool.information_uri {
        driver.insert("informationUri".into(), json!(uri));
    }
    driver.insert("rules".into(), Value::Array(rules));
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": driver},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    })
}

/// The first line of a message, bounded, as a rule's short description.
fn short(message: &str, code: &str) -> String {
    let first = message.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or(code);
    crate::tools::truncate(first, 200).to_owned()
}
