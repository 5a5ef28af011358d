use std::collections::BTreeMap;

use crafting_core::digest::{Event, RunOutcome, Verdict};
use crafting_core::ledger::Ledger;
use crafting_core::{JobStatus, Kind};

use crate::support::*;

/// Recipes every project of the day has: a failing audit with two
/// advisories, a failing test run, a lint run with a warning and a note, and
/// a plain build.
fn recipes() -> Vec<(&'static str, &'static str)> {
    vec![
        ("audit", "cat cve.txt; exit 1"),
        ("test", "cat tests.txt; exit 1"),
        ("lint", "cat lint.txt"),
        ("build", "echo built"),
    ]
}

fn files() -> Vec<(&'static str, String)> {
    let cve = finding_line(
        "cve",
        "critical",
        "RUSTSEC-2024-0001",
        Some("Cargo.lock"),
        None,
        "foo: memory corruption",
        Some("bump foo to 1.2.3"),
    ) + &finding_line(
        "cve",
        "error",
        "GHSA-aaaa-bbbb-cccc",
        Some("Cargo.lock"),
        None,
        "bar: denial of service",
        Some("bump bar to 0.9.1"),
    );
    let tests = finding_line(
        "test_fail",
        "error",
        "tests::parses_empty_input",
        Some("src/parse.rs"),
        Some(2),
        "assertion failed: left == right",
        None,
    );
    let lint = finding_line(
        "lint",
        "warn",
        "unused_variable",
        Some("src/lib.rs"),
        Some(1),
        "unused variable `x`",
        None,
    ) + &finding_line(
        "lint",
        "info",
        "style_note",
        Some("src/lib.rs"),
        Some(2),
        "consider a shorter name",
        None,
    );
    vec![
        ("cve.txt", cve),
        ("tests.txt", tests),
        ("lint.txt", lint),
        ("src/lib.rs", "fn a() { let x = 1; }\nfn b() {}\n".into()),
        ("src/parse.rs", "#[test]\nfn parses_empty_input() {}\n".into()),
    ]
}

#[actix_rt::test]
async fn each_project_hears_exactly_the_events_it_subscribed_to() {
    let Some(sink) = Sink::start(0) else { return };
    let fx = Fixture::new();
    let files = files();
    let files: Vec<(&str, &str)> = files.iter().map(|(a, b)| (*a, b.as_str())).collect();
    let repo = fx.repo("day", &files);
    let t = fx.start(fx.config(Some(sink.port), &far_cron())).await;

    let projects: &[(&str, &[&str], &[&str])] = &[
        ("alpha", &["alpha@example.org"], &[]),
        ("beta", &["beta@example.org", "beta2@example.org"], &["test_fail", "lint_warn"]),
        ("gamma", &["gamma@example.org"], &["nightly_summary"]),
        ("delta", &[], &["nightly_summary", "audit_fail"]),
        ("eps", &["eps@example.org"], &["audit_pass"]),
    ];
    let mut jobs: BTreeMap<(&str, &str), String> = BTreeMap::new();
    for (name, email, on) in projects {
        let mut r = recipes();
        if *name == "eps" {
            r[0] = ("audit", "echo no advisories");
        }
        t.create_project(&admin(), spec(name, &repo, &r, email, on)).await.unwrap();
        for (recipe, _) in recipes() {
            let job = run(&t, name, recipe).await;
            jobs.insert((name, recipe), job.id);
        }
    }
    let alpha_audit = &jobs[&("alpha", "audit")];
    assert_eq!(t.job_status(&admin(), alpha_audit).await.unwrap().status, JobStatus::Failed);
    assert_eq!(
        t.job_status(&admin(), &jobs[&("eps", "audit")]).await.unwrap().status,
        JobStatus::Succeeded
    );

    // Patch attempts as the patcher records them: one drafted (listed), one
    // whose apply failed (not listed).
    let findings = t.findings(&admin(), alpha_audit).await.unwrap();
    let cve_id = findings.iter().find(|f| f.finding.kind == Kind::Cve).unwrap().id;
    let ledger = Ledger::open(&t.config().ledger_path(), 2).await.unwrap();
    let (job_id, now) = (alpha_audit.clone(), crafting_core::ledger::now());
    ledger
        .write(move |tx| {
            tx.execute(
                "INSERT INTO patch_attempts (job_id, finding_id, attempt_number, status, branch,
                                             pr_url, created_at, updated_at)
                 VALUES (?1, ?2, 1, 'pr_opened', 'ct/fix-1', 'https://forge.test/pr/7', ?3, ?3),
                        (?1, ?2, 2, 'apply_failed', NULL, NULL, ?3, ?3)",
                deadpool_sqlite::rusqlite::params![job_id, cve_id, now],
            )?;
            Ok(())
        })
        .await
        .unwrap();

    let date = today(&t);
    let report = t.run_digest_now(Some(date), false).await.unwrap();
    let outcome: BTreeMap<&str, &RunOutcome> =
        report.projects.iter().map(|p| (p.project.as_str(), &p.outcome)).collect();
    assert!(matches!(outcome["delta"], RunOutcome::SkippedNoRecipients), "{report:?}");
    for name in ["alpha", "beta", "gamma", "eps"] {
        assert!(matches!(outcome[name], RunOutcome::Sent { attempt: 1, .. }), "{name}: {report:?}");
    }

    let mails = sink.wait_for(4, std::time::Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 4, "one mail per project with recipients");
    let by_rcpt: BTreeMap<String, &Received> =
        mails.iter().map(|m| (m.rcpt_tos[0].clone(), m)).collect();
    let listed = |mail: &Received, project: &str| -> Vec<&'static str> {
        let (text, html) = mail.parts();
        recipes()
            .into_iter()
            .map(|(r, _)| r)
            .filter(|r| {
                let url = format!("http://ct.test:8810/jobs/{}", jobs[&(project, *r)]);
                assert_eq!(text.contains(&url), html.contains(&url), "{project} {r}");
                text.contains(&url)
            })
            .collect()
    };

    // alpha: the defaults (audit_fail, cve_found, patch_drafted).
    let alpha = by_rcpt["alpha@example.org"];
    assert_eq!(alpha.rcpt_tos, ["alpha@example.org"]);
    assert_eq!(alpha.mail_from, "ct@example.org");
    let headers = &alpha.parsed().headers;
    let header = |k: &str| headers.iter().find(|h| h.get_key() == k).map(|h| h.get_value());
    assert_eq!(header("Auto-Submitted").as_deref(), Some("auto-generated"));
    assert!(header("Message-ID").is_some_and(|id| id.starts_with('<') && id.ends_with('>')));
    assert_eq!(listed(alpha, "alpha"), ["audit"]);
    assert_eq!(
        alpha.subject(),
        format!("[crafting-table] alpha {date}: 1 failed, 2 new CVEs, 1 patch drafted")
    );
    let (text, html) = alpha.parts();
    for needle in [
        "RUSTSEC-2024-0001",
        "bump foo to 1.2.3",
        "GHSA-aaaa-bbbb-cccc",
        "bump bar to 0.9.1",
        "Events: audit_fail, cve_found, patch_drafted",
        "http://ct.test:8810/projects/alpha",
        "https://forge.test/pr/7",
        "audit in .: failed (exit 1)",
        "findings: cve 2",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(html.contains("RUSTSEC-2024-0001") && html.contains("https://forge.test/pr/7"));
    assert_eq!(text.matches("/patches/").count(), 1, "only the drafted attempt: {text}");
    // The changes lead the mail.
    assert!(text.find("What changed").unwrap() < text.find("Jobs (").unwrap());

    // beta: test_fail and lint_warn; both recipients on one mail.
    let beta = by_rcpt["beta@example.org"];
    assert_eq!(beta.rcpt_tos, ["beta@example.org", "beta2@example.org"]);
    assert_eq!(listed(beta, "beta"), ["test", "lint"]);
    let (text, _) = beta.parts();
    assert!(text.contains("tests::parses_empty_input at src/parse.rs:2"), "{text}");
    assert!(text.contains("unused_variable at src/lib.rs:1"), "{text}");
    assert!(!text.contains("RUSTSEC"), "{text}");
    let to = beta.parsed().headers.iter().find(|h| h.get_key() == "To").unwrap().get_value();
    assert!(to.contains("beta@example.org") && to.contains("beta2@example.org"), "{to}");

    // gamma: every job of the window.
    assert_eq!(listed(by_rcpt["gamma@example.org"], "gamma"), ["audit", "test", "lint", "build"]);
    // eps: only its passing audit.
    let eps = by_rcpt["eps@example.org"];
    assert_eq!(listed(eps, "eps"), ["audit"]);
    assert!(eps.parts().0.contains("Events: audit_pass"));

    // The JSON of the day says the same.
    let day = t.render_digest(date).await.unwrap();
    let digest = |name: &str| day.projects.iter().find(|p| p.project == name).unwrap();
    assert_eq!(digest("delta").verdict, Verdict::NoRecipients);
    assert_eq!(
        digest("beta").events,
        [Event::TestFail, Event::LintWarn],
        "subscribed events that happened"
    );
    assert_eq!(digest("alpha").jobs[0].advisories.len(), 2);
    assert_eq!(digest("alpha").delivery.as_ref().unwrap().status, "sent");
    let json = serde_json::to_value(&day).unwrap();
    assert_eq!(json["projects"][0]["project"], "alpha");
    assert_eq!(json["projects"][0]["jobs"][0]["events"][0], "audit_fail");
}
