//! Filtering findings as the API returned them, without assuming more of
//! their shape than `kind`, `severity`, `file` and `tool`.

use serde_json::Value;

use crate::params::{FindingKind, Severity};

/// What to keep.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only these kinds; all when empty.
    pub kinds: Vec<FindingKind>,
    /// Only this severity and worse.
    pub min_severity: Option<Severity>,
    /// Only findings whose file starts with this path.
    pub path_prefix: Option<String>,
    /// Only findings reported by this tool.
    pub tool: Option<String>,
    /// Keep each finding's `raw_json`.
    pub include_raw: bool,
    /// At most this many.
    pub limit: usize,
}

/// The kept findings, worst first, and how many matched before the limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Findings that passed the filter, before the limit.
    pub matched: usize,
    /// At most `limit` of them, ordered by severity (worst first), then as given.
    pub findings: Vec<Value>,
}

/// A severity's place on the scale: `critical` > `error` > `warn` > `info`;
/// anything else ranks below `info`.
pub fn severity_rank(severity: Option<&str>) -> i8 {
    match severity {
        Some("critical") => 3,
        Some("error") => 2,
        Some("warn") => 1,
        Some("info") => 0,
        _ => -1,
    }
}

/// Applies `filter` to `findings`.
pub fn select(findings: Vec<Value>, filter: &Filter) -> Selection {
    let min_rank = filter.min_severity.map(|s| severity_rank(Some(s.as_str())));
    let text = |f: &Value, key: &str| f.get(key).and_then(Value::as_str).map(str::to_owned);
    let mut kept: Vec<(i8, Value)> = findings
        .into_iter()
        .filter(|f| {
            filter.kinds.is_empty()
                || text(f, "kind")
                    .is_some_and(|k| filter.kinds.iter().any(|want| want.as_str() == k))
        })
        .filter(|f| {
            filter
                .path_prefix
                .as_deref()
                .is_none_or(|prefix| text(f, "file").is_some_and(|file| file.starts_with(prefix)))
        })
        .filter(|f| {
            filter.tool.as_deref().is_none_or(|tool| text(f, "tool").as_deref() == Some(tool))
        })
        .map(|f| (severity_rank(f.get("severity").and_then(Value::as_str)), f))
        .filter(|(rank, _)| min_rank.is_none_or(|min| *rank >= min))
        .collect();
    let matched = kept.len();
    // Stable sort: equal severities keep the order the tool reported them in.
    kept.sort_by_key(|(rank, _)| std::cmp::Reverse(*rank));
    let findings = kept
        .into_iter()
        .take(filter.limit)
        .map(|(_, mut f)| {
            if !filter.include_raw
                && let Some(map) = f.as_object_mut()
            {
                map.remove("raw_json");
            }
            f
        })
        .collect();
    Selection { matched, findings }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample() -> Vec<Value> {
        vec![
            json!({"id": 1, "kind": "lint", "severity": "warn", "tool": "clippy", "file": "src/a.rs", "raw_json": {"x": 1}}),
            json!({"id": 2, "kind": "test_fail", "severity": "error", "tool": "cargo-test", "file": null}),
            json!({"id": 3, "kind": "cve", "severity": "critical", "tool": "cargo-audit", "file": "Cargo.lock"}),
            json!({"id": 4, "kind": "lint", "severity": "info", "tool": "clippy", "file": "tests/b.rs"}),
            json!({"id": 5, "kind": "lint", "severity": "error", "tool": "clippy", "file": "src/c.rs", "extra": true}),
        ]
    }

    fn ids(sel: &Selection) -> Vec<i64> {
        sel.findings.iter().map(|f| f["id"].as_i64().unwrap()).collect()
    }

    #[test]
    fn worst_first_and_stable() {
        let sel = select(sample(), &Filter { limit: 10, ..Filter::default() });
        assert_eq!(ids(&sel), vec![3, 2, 5, 1, 4]);
        assert_eq!(sel.matched, 5);
    }

    #[test]
    fn minimum_severity_uses_the_scale() {
        let filter = Filter { min_severity: Some(Severity::Error), limit: 10, ..Filter::default() };
        assert_eq!(ids(&select(sample(), &filter)), vec![3, 2, 5]);
    }

    #[test]
    fn kind_path_and_tool_filters_combine() {
        let filter = Filter {
            kinds: vec![FindingKind::Lint],
            path_prefix: Some("src/".into()),
            tool: Some("clippy".into()),
            limit: 10,
            ..Filter::default()
        };
        assert_eq!(ids(&select(sample(), &filter)), vec![5, 1]);
    }

    #[test]
    fn limit_counts_matches_and_raw_is_dropped_unless_asked() {
        let sel = select(sample(), &Filter { limit: 2, ..Filter::default() });
        assert_eq!((sel.matched, sel.findings.len()), (5, 2));
        let lint = select(
            sample(),
            &Filter { kinds: vec![FindingKind::Lint], limit: 10, ..Filter::default() },
        );
        assert!(lint.findings.iter().all(|f| f.get("raw_json").is_none()));
        assert_eq!(lint.findings[0]["extra"], json!(true), "unknown fields pass through");
        let raw = select(sample(), &Filter { include_raw: true, limit: 10, ..Filter::default() });
        assert!(raw.findings.iter().any(|f| f.get("raw_json").is_some()));
    }

    #[test]
    fn unknown_severities_rank_lowest() {
        assert!(severity_rank(Some("fatal")) < severity_rank(Some("info")));
        assert_eq!(severity_rank(None), -1);
    }
}
