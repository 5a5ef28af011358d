//! `to_sarif` produces SARIF 2.1.0 that validates against the schema.

use std::path::PathBuf;

use crafting_parsers::{FINGERPRINT_KEY, SarifTool, to_sarif};
use serde_json::Value;

use crate::common::{ctx, fixture, parse};

/// The SARIF schema shared beside the project, when present.
fn schema() -> Option<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/schemas/sarif-schema-2.1.0.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!("skipped: no SARIF schema at {}", path.display());
        return None;
    };
    Some(serde_json::from_str(&text).expect("the schema is JSON"))
}

/// Findings of every kind, from several fixtures.
fn sample() -> Vec<crafting_parsers::Finding> {
    let mut all = parse(&ctx("rust", "/tmp/rfix/ws", "."), &fixture("mixed/build_clippy_test.log"));
    all.extend(parse(&ctx("rust", "/r", "."), &fixture("cargo-audit/report.log")));
    all.extend(parse(&ctx("python", "/r", "."), &fixture("pip-audit/current.log")));
    all.extend(parse(&ctx("typescript", "/tmp/jsproj", "."), &fixture("eslint/json.log")));
    all.extend(parse(&ctx("go", "/r", "."), b"no findings here\n"));
    all
}

#[test]
fn exported_sarif_validates_against_the_schema() {
    let Some(schema) = schema() else { return };
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let tool = SarifTool {
        name: "crafting-table".to_owned(),
        version: Some("0.1.0".to_owned()),
        information_uri: Some("https://example.invalid/crafting-table".to_owned()),
    };
    let log = to_sarif(&sample(), &tool);
    let errors: Vec<String> =
        validator.iter_errors(&log).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // The check has teeth: an unknown level is refused.
    let mut broken = log.clone();
    broken["runs"][0]["results"][0]["level"] = Value::from("fatal");
    assert!(!validator.is_valid(&broken));
    // An empty log is valid too.
    let empty = to_sarif(&[], &SarifTool::new("crafting-table"));
    assert!(validator.is_valid(&empty));
}

#[test]
fn exported_results_carry_rule_level_location_and_fingerprint() {
    let findings = sample();
    let log = to_sarif(&findings, &SarifTool::new("crafting-table"));
    let run = &log["runs"][0];
    let results = run["results"].as_array().expect("results");
    assert_eq!(results.len(), findings.len());

    let ret = results.iter().find(|r| r["ruleId"] == "clippy::needless_return").expect("result");
    assert_eq!(ret["level"], "warning");
    assert_eq!(
        ret["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "app/src/main.rs"
    );
    assert_eq!(ret["locations"][0]["physicalLocation"]["region"]["startLine"], 15);
    assert_eq!(ret["locations"][0]["physicalLocation"]["region"]["startColumn"], 5);
    let source = findings.iter().find(|f| f.code == "clippy::needless_return").expect("finding");
    assert_eq!(ret["partialFingerprints"][FINGERPRINT_KEY], source.fingerprint.as_str());

    // A cve has a file but no line: no region. A critical one is an error.
    let cve = results.iter().find(|r| r["ruleId"] == "RUSTSEC-2024-0001").expect("cve");
    assert_eq!(cve["level"], "error");
    assert!(cve["locations"][0]["physicalLocation"].get("region").is_none());
    // No file at all: no location.
    let pip = results.iter().find(|r| r["ruleId"] == "PYSEC-2018-66").expect("pip");
    assert!(pip.get("locations").is_none());
    // Spaces are escaped in URIs; rules are unique and indexed.
    let rules = run["tool"]["driver"]["rules"].as_array().expect("rules");
    let ids: std::collections::HashSet<_> = rules.iter().map(|r| r["id"].as_str()).collect();
    assert_eq!(ids.len(), rules.len());
    for r in results {
        let index = r["ruleIndex"].as_u64().expect("index") as usize;
        assert_eq!(rules[index]["id"], r["ruleId"]);
    }
    let critical = rules.iter().find(|r| r["id"] == "RUSTSEC-2024-0001").expect("rule");
    assert_eq!(critical["properties"]["security-severity"], "9.5");
}

#[test]
fn exported_uris_escape_spaces() {
    let findings = parse(&ctx("javascript", "/tmp/jsproj", "."), &fixture("eslint/json.log"));
    let log = to_sarif(&findings, &SarifTool::new("crafting-table"));
    let uris: Vec<&str> = log["runs"][0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].as_str())
        .collect();
    assert!(uris.contains(&"src/with%20space/file.js"), "{uris:?}");
}
