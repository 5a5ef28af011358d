use crafting_core::{JobRequest, JobStatus, Kind};

use crate::common::*;

const CARGO_TOML: &str =
    "[package]\nname = \"lintme\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n";
const V1: &str = "pub fn f(x: i32) -> i32 {\n    return x + 1;\n}\n";

/// Real clippy on a real repository: the identity of a finding survives lines
/// inserted above it, so comparing jobs shows movement, not noise.
#[actix_rt::test]
async fn identities_survive_inserted_lines_and_show_new_fixed_and_open() {
    let fx = Fixture::new();
    let repo = fx.repo("lintme", &[("Cargo.toml", CARGO_TOML), ("src/lib.rs", V1)]);
    let c1 = git(&repo, &["rev-parse", "HEAD"]);
    // Commit 2: ten lines above the old lint, and one new lint.
    let header: String = (1..=10).map(|i| format!("// header line {i}\n")).collect();
    let v2 = format!("{header}{V1}\npub fn g(v: &Vec<i32>) -> usize {{\n    v.len()\n}}\n");
    write(&repo, "src/lib.rs", &v2);
    git(&repo, &["commit", "-qam", "insert lines, add a lint"]);
    let c2 = git(&repo, &["rev-parse", "HEAD"]);
    // Commit 3: the old lint is fixed.
    write(&repo, "src/lib.rs", &v2.replace("return x + 1;", "x + 1"));
    git(&repo, &["commit", "-qam", "fix needless return"]);
    let c3 = git(&repo, &["rev-parse", "HEAD"]);

    let t = fx.start().await;
    let mut s =
        spec("lintme", &repo, ".", &[("lint", "cargo clippy --quiet --message-format=json")]);
    s.subprojects[0].language = "rust".into();
    t.create_project(&admin(), s).await.unwrap();
    let mut jobs = Vec::new();
    for sha in [&c1, &c2, &c3] {
        let job = run(&t, "lintme", JobRequest { git_ref: Some(sha.clone()), ..req("lint") }).await;
        assert_eq!(job.status, JobStatus::Succeeded, "{}", log(&t, &job.id).await);
        jobs.push(job);
    }

    let first = t.findings(&admin(), &jobs[0].id).await.unwrap();
    assert_eq!(first.len(), 1, "{first:#?}");
    let old = &first[0];
    assert_eq!(old.finding.kind, Kind::Lint);
    assert_eq!(old.finding.code, "clippy::needless_return");
    assert_eq!(old.finding.file.as_deref(), Some("src/lib.rs"));
    assert_eq!(old.finding.line, Some(2));

    let second = t.compare(&admin(), &jobs[1].id, None).await.unwrap();
    assert_eq!(second.base_job_id.as_deref(), Some(jobs[0].id.as_str()));
    assert_eq!(second.new.len(), 1, "{:#?}", second.new);
    assert_eq!(second.new[0].finding.code, "clippy::ptr_arg");
    assert_eq!(second.fixed.len(), 0, "{:#?}", second.fixed);
    assert_eq!(second.open.len(), 1);
    assert_eq!(second.open[0].finding.line, Some(12), "the old lint moved down ten lines");
    assert_eq!(second.open[0].identity, old.identity);
    assert_ne!(second.open[0].finding.fingerprint, old.finding.fingerprint);

    let third = t.compare(&admin(), &jobs[2].id, None).await.unwrap();
    assert_eq!(third.fixed.len(), 1);
    assert_eq!(third.fixed[0].finding.code, "clippy::needless_return");
    assert_eq!(third.new.len(), 0, "{:#?}", third.new);
    assert_eq!(third.open.len(), 1);
}

/// The log is parsed while the recipe prints it: a report that arrives in
/// pieces, with pauses in the middle of its lines and of the document, is
/// read whole, and a failed recipe with nothing recognisable still gets its
/// `recipe_fail` once its exit code is known.
#[actix_rt::test]
async fn output_printed_in_pieces_while_the_recipe_runs_is_parsed_whole() {
    let fx = Fixture::new();
    let report = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <testsuites tests=\"2\" failures=\"1\" errors=\"1\">\n\
         <testsuite name=\"pkg\" tests=\"2\" failures=\"1\" errors=\"1\">\n\
         <testcase name=\"TestAdd\" classname=\"pkg\">\n\
         <failure message=\"Failed\">util_test.go:12: add(1, 1) = 3, want 2</failure>\n\
         </testcase>\n\
         <testcase name=\"TestPanics\" classname=\"pkg\">\n\
         <error message=\"Runtime error\">panic: index out of range</error>\n\
         </testcase>\n\
         </testsuite>\n\
         </testsuites>\n";
    let repo = fx.repo("paced", &[("report.xml", report)]);
    // Byte ranges of the report, each printed after a pause: the second
    // piece starts inside a line, the last one holds the closing tag.
    let paced = "echo building; sleep 0.3; head -c 150 report.xml; sleep 0.3; \
         head -c 260 report.xml | tail -c +151; sleep 0.3; tail -c +261 report.xml; \
         sleep 0.3; exit 1";
    let t = fx.start().await;
    let recipes = [("paced", paced), ("quiet", "echo nothing here; sleep 0.3; exit 4")];
    t.create_project(&admin(), spec("paced", &repo, ".", &recipes)).await.unwrap();

    let job = run(&t, "paced", req("paced")).await;
    assert_eq!(job.status, JobStatus::Failed);
    let found = t.findings(&admin(), &job.id).await.unwrap();
    let mut codes: Vec<&str> = found.iter().map(|f| f.finding.code.as_str()).collect();
    codes.sort();
    assert!(found.iter().all(|f| f.finding.kind == Kind::TestFail), "{found:#?}");
    assert_eq!(codes.len(), 2, "{found:#?}");
    assert!(codes[0].contains("TestAdd") && codes[1].contains("TestPanics"), "{codes:?}");
    assert_eq!(job.findings_count, 2);

    let job = run(&t, "paced", req("quiet")).await;
    let found = t.findings(&admin(), &job.id).await.unwrap();
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].finding.kind, Kind::RecipeFail);
    assert_eq!(found[0].finding.code, "exit_4");
}
