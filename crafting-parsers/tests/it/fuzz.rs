//! Nothing the parsers read makes them panic: arbitrary bytes, and line
//! soups stitched from fragments of real fixtures, for every language.

use proptest::prelude::*;

use crate::common::{ctx, fixture};

const LANGUAGES: [&str; 6] = ["rust", "python", "go", "typescript", "javascript", "other"];

const FIXTURES: [&str; 17] = [
    "clippy/workspace_all_targets.log",
    "rustc/build_errors_macro.log",
    "cargo-test/workspace.log",
    "nextest/run_and_junit.log",
    "cargo-audit/report.log",
    "ruff/check.log",
    "mypy/json.log",
    "mypy/text_pretty.log",
    "pytest/console_and_junit.log",
    "pytest/subdir_collection_junit.log",
    "pip-audit/current.log",
    "govulncheck/stream.log",
    "go-vet/json.log",
    "eslint/json.log",
    "tsc/pretty.log",
    "sarif/eslint.sarif.log",
    "junit/go_junit_report.log",
];

/// Every line of every fixture, and some pieces of lines.
fn fragments() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for name in FIXTURES {
        for line in fixture(name).split(|b| *b == b'\n') {
            out.push(line.to_vec());
            if line.len() > 8 {
                out.push(line[..line.len() / 2].to_vec());
                out.push(line[line.len() / 3..].to_vec());
            }
        }
    }
    out
}

fn parse_everywhere(log: &[u8]) {
    for language in LANGUAGES {
        let c = ctx(language, "/tmp/rfix/ws", "app");
        let findings = crafting_parsers::Registry::with_defaults().parse(&c, &mut &log[..]);
        for f in &findings {
            assert_eq!(f.fingerprint.len(), 16);
            assert!(f.line != Some(0) && f.column != Some(0));
            assert!(f.file.as_deref().is_none_or(|p| !p.starts_with('/') && !p.contains('\\')));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        parse_everywhere(&bytes);
    }

    #[test]
    fn line_soups_never_panic(
        picks in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..6), 0..80)
    ) {
        let pool = fragments();
        let mut log = Vec::new();
        for (index, glue) in picks {
            log.extend_from_slice(&pool[index.index(pool.len())]);
            log.extend_from_slice(match glue {
                0 => b"\r\n".as_slice(),
                1 => b"".as_slice(),
                2 => b"\x1b[0m\n".as_slice(),
                3 => b"}\n".as_slice(),
                4 => b"<testsuite>\n".as_slice(),
                _ => b"\n".as_slice(),
            });
        }
        parse_everywhere(&log);
    }
}
