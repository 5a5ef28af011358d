//! Integration tests of crafting-parsers: one binary, one module per area.

mod common; // the shared `check` helper and fixture loading
mod fingerprint; // the same warning from two worktrees compares equal
mod fuzz; // property tests: arbitrary bytes and line soups never panic
mod go; // go vet and govulncheck
mod python; // ruff, mypy, pytest and pip-audit
mod quirks; // ANSI colours, CRLF, Windows paths, cut-off logs, huge lines
mod rust; // clippy, rustc, cargo test, nextest and cargo audit
mod sarif_export; // to_sarif checked against the SARIF 2.1.0 schema
mod typescript; // eslint and tsc
mod universal; // SARIF and JUnit for any language, registry behaviour
