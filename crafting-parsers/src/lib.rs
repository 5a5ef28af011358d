//! Tool output in, findings out.
//!
//! `crafting-parsers` is a pure library: **it does no I/O besides reading the
//! log it is handed, and holds no async code**. The engine hands it a job's
//! log together with a [`ParseContext`] (language, recipe, exit code, where
//! the repository was checked out, where the recipe ran) and gets back a list
//! of [`Finding`]s whose paths are relative to the repository root.
//!
//! ```
//! use crafting_parsers::{ParseContext, Registry};
//!
//! let registry = Registry::with_defaults();
//! let ctx = ParseContext::new("rust", "test", Some(2), "/work/repo", ".");
//! let findings = registry.parse(&ctx, &mut "oops\n".as_bytes());
//! assert_eq!(findings[0].code, "exit_2");
//! ```
//!
//! # How a log is read
//!
//! [`Registry::parse`] picks the parsers registered for the context's
//! language (following aliases: `javascript` reads as `typescript`) plus
//! those registered for every language ([`ANY_LANGUAGE`]), and reads the log
//! **once, line by line**: each line is cleaned (CR, terminal colours,
//! progress overwrites and invalid UTF-8 removed) and offered to every
//! parser's [`Session`]; JSON documents found between human lines, one per
//! line or pretty-printed over many, are parsed once and offered to every
//! session, which keeps those of its own shape. A log that runs
//! `cargo build && cargo clippy --message-format=json && cargo test` thus
//! yields the compiler's, clippy's and the tests' findings together. Memory
//! follows the findings, not the log: lines and multi-line documents are
//! bounded at 64 MiB each ([`MAX_LINE_BYTES`], [`MAX_DOCUMENT_BYTES`]) and
//! anything longer is skipped. Nothing panics on bad input.
//!
//! Parsers recognise their formats **by content**; they claim every recipe
//! name, so a project may call its recipes what it likes. [`Parser::claims`]
//! stays for parsers that want to limit themselves to some recipes.
//!
//! After the pass, findings that report the same thing twice (a tool's text
//! and JSON forms, clippy's lib and test targets, a console and a JUnit
//! report) are merged: same kind, code and file, same line and column where
//! both know them (failed tests match regardless of line); the richer record
//! is kept. When nothing was found and the exit code is not 0, one
//! `recipe_fail` coded `exit_<n>` (`exit_signal` without a code) is reported.
//!
//! # Formats
//!
//! | language | tool and format | parser |
//! |---|---|---|
//! | rust | `cargo build/check/clippy --message-format=json`, `rustc --error-format=json` | [`tools::CargoDiagnostics`] |
//! | rust | `cargo audit --json` | [`tools::CargoAudit`] |
//! | rust | `cargo test` console text | [`tools::CargoTest`] |
//! | python | `ruff check --output-format=json` | [`tools::Ruff`] |
//! | python | `mypy -O json`, mypy text | [`tools::Mypy`] |
//! | python | pytest console (`--tb=line`, `short`, `long`) | [`tools::Pytest`] |
//! | python | `pip-audit -f json` | [`tools::PipAudit`] |
//! | go | `govulncheck -json` | [`tools::Govulncheck`] |
//! | go | `go vet -json` | [`tools::GoVet`] |
//! | typescript, javascript | `eslint -f json` | [`tools::Eslint`] |
//! | typescript, javascript | `tsc` plain and pretty text | [`tools::Tsc`] |
//! | any | SARIF 2.1.0 | [`tools::Sarif`] |
//! | any | JUnit XML | [`tools::Junit`] |
//!
//! # Conventions and choices
//!
//! - **Paths** are stored relative to the repository root with `/`
//!   separators. Relative paths are read relative to the folder the tool
//!   printed them from (the work dir, the cargo workspace root, pytest's
//!   rootdir, which is inferred from absolute paths in the log when pytest
//!   prints no `rootdir:` header); absolute paths (POSIX, Windows drive, `file://` URI) under the
//!   repository root are made relative. Lint findings in files outside the
//!   repository (dependencies, the standard library) are dropped; a failed
//!   test whose panic points outside keeps its finding without a file.
//! - **Lines** are 1-based. **Columns** are 1-based and meant in characters.
//!   Tools that count otherwise are converted where the output allows
//!   (mypy's 0-based JSON columns); where it does not, the column is kept as
//!   printed and the parser's documentation says so: eslint, tsc and SARIF
//!   count UTF-16 code units, go vet counts bytes.
//! - **Severity**: rustc/clippy error/warning/note+help -> error/warn/info;
//!   eslint 2/1 -> error/warn; mypy error/note -> error/info; ruff uses its
//!   own `severity` field when printed, else error for syntax errors and warn
//!   for rules; go vet diagnostics are warn; SARIF error/warning/note ->
//!   error/warn/info. A `cve` is critical from CVSS 9.0, error from 7.0 or
//!   without a score, warn below (cargo audit's CVSS v3 vectors are scored
//!   here; v4 vectors count as no score). `test_fail` and `recipe_fail` are
//!   error.
//! - **Audit warnings** that are no vulnerability (cargo audit's
//!   unmaintained, unsound, yanked) are `lint`/warn.
//! - **govulncheck**: an advisory whose vulnerable function is called is a
//!   `cve` at error; one only imported or required is a `cve` at info.
//! - **Fixes**: `suggested_fix` is text a person can follow; the tool's own
//!   edits, with their applicability, stay in `raw_json` for patchers. For
//!   rustc only machine-applicable suggestions fill `suggested_fix`.
//! - **Fingerprints** are [`fingerprint`] of kind, file, line and code, never
//!   the message.
//!
//! Findings can be written back out as SARIF with [`to_sarif`].
#![warn(missing_docs)]

mod finding;
mod paths;
mod registry;
mod sarif_export;
mod stream;
pub mod tools;

pub use finding::{Finding, Kind, Severity, fingerprint};
pub use registry::{ANY_LANGUAGE, ParseContext, Parser, Registry, Session, generic_failure};
pub use sarif_export::{FINGERPRINT_KEY, SarifTool, to_sarif};
pub use stream::{MAX_DOCUMENT_BYTES, MAX_LINE_BYTES};
