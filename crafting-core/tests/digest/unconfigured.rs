use std::io::Write;
use std::sync::{Arc, Mutex};

use crafting_core::digest::{DISABLED_LINE, RunOutcome};

use crate::support::*;

/// Collects what the fmt subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[actix_rt::test]
async fn without_smtp_one_line_is_logged_and_only_dry_runs_work() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // The engine's actors run on this test's thread, so a thread default sees them.
    let _guard = tracing::subscriber::set_default(subscriber);

    let fx = Fixture::new();
    let cve = finding_line(
        "cve",
        "critical",
        "CVE-2026-0001",
        Some("go.sum"),
        None,
        "bad",
        Some("bump x to 2"),
    );
    let repo = fx.repo("quiet", &[("cve.txt", &cve)]);
    let config = fx.config(None, &far_cron());
    let t = fx.start(config.clone()).await;
    let recipes = [("audit", "cat cve.txt; exit 1")];
    t.create_project(&admin(), spec("quiet", &repo, &recipes, &["ops@example.org"], &[]))
        .await
        .unwrap();
    let job = run(&t, "quiet", "audit").await;
    assert!(!t.digest().can_send());

    let log = captured.text();
    assert_eq!(log.matches(DISABLED_LINE).count(), 1, "{log}");
    assert!(log.lines().any(|l| l.contains(" INFO ") && l.ends_with(DISABLED_LINE)), "{log}");

    // A real run is refused with a reason naming the variable.
    let err = t.run_digest_now(None, false).await.unwrap_err();
    assert_eq!(err.code(), "smtp_unconfigured");
    assert!(err.is_client_error());
    assert!(err.to_string().contains("CRAFTING_SMTP_HOST"), "{err}");

    // A dry run renders the digest.
    let date = today(&t);
    let report = t.run_digest_now(Some(date), true).await.unwrap();
    assert!(report.dry_run);
    let RunOutcome::DryRun { digest } = &report.projects[0].outcome else { panic!("{report:?}") };
    assert_eq!(digest.recipients, ["ops@example.org"]);
    assert_eq!(digest.subject, format!("[crafting-table] quiet {date}: 1 failed, 1 new CVE"));
    assert!(digest.text.contains(&format!("http://ct.test:8810/jobs/{}", job.id)));
    assert!(digest.text.contains("CVE-2026-0001 [critical]: bump x to 2"), "{}", digest.text);
    assert!(digest.delivery.is_none(), "dry runs record nothing");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["projects"][0]["result"], "dry_run");

    // So does render, and a second engine on the same data logs the line again, once.
    let day = t.render_digest(date).await.unwrap();
    assert_eq!(day.projects[0].jobs[0].id, job.id);
    assert!(day.projects[0].delivery.is_none());
    let _again = fx.start(config).await;
    assert_eq!(captured.text().matches(DISABLED_LINE).count(), 2);
}
