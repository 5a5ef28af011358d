//! eslint and tsc, read for both `typescript` and `javascript`.

use crate::common::{check, ctx};

const ESLINT: &str = "
    lint error eslint no-var @ src/app.js:1:1 | Unexpected var, use let or const instead.
    lint error eslint no-unused-vars @ src/app.js:1:5 | 'unusedThing' is assigned a value but never used.
    lint warn eslint prefer-const @ src/app.js:2:5 | 'name' is never reassigned. Use 'const' instead.
    lint error eslint eqeqeq @ src/app.js:3:10 | Expected '===' and instead saw '=='.
    lint warn eslint semi @ src/app.js:3:48 | Missing semicolon.
    lint error eslint no-unused-vars @ src/app.js:4:10 | 'f' is defined but never used.
    lint warn eslint semi @ src/app.js:4:25 | Missing semicolon.
    lint error eslint parse-error @ src/broken.js:1:12 | Parsing error: Unexpected token ;
    lint warn eslint prefer-const @ src/with space/file.js:1:5 | 'y' is never reassigned. Use 'const' instead.
    lint warn eslint semi @ src/with space/file.js:1:10 | Missing semicolon.
    lint warn eslint semi @ src/with space/file.js:2:15 | Missing semicolon.
";

#[test]
fn eslint_json_with_fatal_errors_fixes_and_spaces_in_paths() {
    let findings = check("eslint/json.log", &ctx("javascript", "/tmp/jsproj", "."), ESLINT);
    assert_eq!(findings[0].suggested_fix.as_deref(), Some("replace offsets 0..3 with `let`"));
    assert_eq!(findings[4].suggested_fix.as_deref(), Some("replace offsets 88..88 with `;`"));
    // Suggestions that are not automatic fixes stay in the raw record.
    assert_eq!(findings[1].suggested_fix, None);
    assert_eq!(
        findings[1].raw_json.as_ref().expect("raw")["suggestions"][0]["fix"]["range"],
        serde_json::json!([0, 20])
    );
}

const TSC: &str = "
    lint error tsc TS2322 @ ts/index.ts:1:7 | Type 'string' is not assignable to type 'number'.
    lint error tsc TS2322 @ ts/index.ts:3:26 | Type 'string' is not assignable to type 'number'.
    lint error tsc TS2322 @ ts/index.ts:4:33 | Type 'number' is not assignable to type 'string'.
    lint error tsc TS2322 @ ts/index.ts:5:40 | Type 'string' is not assignable to type 'number'.
    lint error tsc TS2345 @ ts/index.ts:9:3 | Argument of type '{ a: { b: string; }; }' is not assignable to parameter of type '{ a: { b: number; }; }'.
    lint error tsc TS2322 @ ts/sub dir/extra.ts:1:14 | Type 'number' is not assignable to type 'string'.
";

const CHAIN: &str = "Argument of type '{ a: { b: string; }; }' is not assignable to parameter of type \
    '{ a: { b: number; }; }'.\nThe types of 'a.b' are incompatible between these types.\n\
    Type 'string' is not assignable to type 'number'.";

#[test]
fn tsc_plain_output_joins_message_chains() {
    let findings = check("tsc/plain.log", &ctx("typescript", "/tmp/jsproj", "."), TSC);
    assert_eq!(findings[4].message, CHAIN);
}

#[test]
fn tsc_pretty_output_with_colours_and_code_frames() {
    let findings = check("tsc/pretty.log", &ctx("typescript", "/tmp/jsproj", "."), TSC);
    assert_eq!(findings[4].message, CHAIN);
}

#[test]
fn tsc_paths_are_relative_to_the_work_dir() {
    let log = "src/a.ts(2,5): error TS2304: Cannot find name 'x'.\n";
    let findings = crate::common::parse(&ctx("typescript", "/r", "web"), log.as_bytes());
    crate::common::check_findings(
        &findings,
        "lint error tsc TS2304 @ web/src/a.ts:2:5 | Cannot find name 'x'.",
    );
}
