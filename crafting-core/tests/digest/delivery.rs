use std::time::Duration;

use crafting_core::digest::RunOutcome;
use crafting_core::ledger::Ledger;
use crafting_core::{CraftingTable, RunReport};

use crate::support::*;

fn outcome<'a>(r: &'a RunReport, project: &str) -> &'a RunOutcome {
    &r.projects.iter().find(|p| p.project == project).unwrap().outcome
}

/// A project whose failing audit is worth a mail under the default events.
async fn failing_audit(fx: &Fixture, t: &CraftingTable, name: &str) {
    let cve =
        finding_line("cve", "error", "RUSTSEC-2023-0042", Some("Cargo.lock"), None, "x", None);
    let repo = fx.repo(name, &[("cve.txt", &cve)]);
    let recipes = [("audit", "cat cve.txt; exit 1")];
    let email = format!("{name}@example.org");
    t.create_project(&admin(), spec(name, &repo, &recipes, &[&email], &[])).await.unwrap();
    run(t, name, "audit").await;
}

#[actix_rt::test]
async fn repeated_runs_and_the_timer_tick_send_one_mail_per_project() {
    let Some(sink) = Sink::start(0) else { return };
    let fx = Fixture::new();
    let t = fx.start(fx.config(Some(sink.port), &far_cron())).await;
    failing_audit(&fx, &t, "one").await;
    failing_audit(&fx, &t, "two").await;
    let date = today(&t);

    let first = t.run_digest_now(Some(date), false).await.unwrap();
    assert_eq!(first.sent(), 2, "{first:?}");
    let second = t.run_digest_now(Some(date), false).await.unwrap();
    assert!(matches!(outcome(&second, "one"), RunOutcome::SkippedAlreadySent { sent_at: Some(_) }));
    assert!(matches!(outcome(&second, "two"), RunOutcome::SkippedAlreadySent { .. }));
    // The scheduled run of that date, as the timer makes it at the fire time.
    let fire = t.digest().clock().window_end(date);
    let ticked = t.digest().tick(fire).await.unwrap();
    assert_eq!(ticked.date, date);
    assert_eq!(ticked.sent(), 0, "{ticked:?}");
    assert!(matches!(outcome(&ticked, "one"), RunOutcome::SkippedAlreadySent { .. }));

    let mails = sink.wait_for(3, Duration::from_secs(2)).await;
    let mut rcpts: Vec<String> = mails.iter().map(|m| m.rcpt_tos.join(",")).collect();
    rcpts.sort();
    assert_eq!(rcpts, ["one@example.org", "two@example.org"]);

    // A dry run afterwards still renders, and records nothing.
    let dry = t.run_digest_now(Some(date), true).await.unwrap();
    let RunOutcome::DryRun { digest } = outcome(&dry, "one") else { panic!("{dry:?}") };
    assert!(digest.text.contains("RUSTSEC-2023-0042"));
    assert_eq!(digest.delivery.as_ref().unwrap().attempts, 1);
    assert_eq!(sink.messages().len(), 2);
}

#[actix_rt::test]
async fn a_refused_send_is_retried_by_the_next_run_and_recorded_once() {
    let Some(sink) = Sink::start(1) else { return };
    let fx = Fixture::new();
    let t = fx.start(fx.config(Some(sink.port), &far_cron())).await;
    failing_audit(&fx, &t, "flaky").await;
    let date = today(&t);

    let first = t.run_digest_now(Some(date), false).await.unwrap();
    let RunOutcome::Failed { reason, attempt: 1 } = outcome(&first, "flaky") else {
        panic!("{first:?}")
    };
    assert!(reason.contains("451"), "{reason}");
    let day = t.render_digest(date).await.unwrap();
    let record = day.projects[0].delivery.clone().unwrap();
    assert_eq!((record.status.as_str(), record.attempts), ("failed", 1));
    assert!(record.error.unwrap().contains("451"));
    assert!(sink.messages().is_empty());

    let second = t.run_digest_now(Some(date), false).await.unwrap();
    assert!(matches!(outcome(&second, "flaky"), RunOutcome::Sent { attempt: 2, .. }), "{second:?}");
    let third = t.digest().tick(t.digest().clock().window_end(date)).await.unwrap();
    assert!(matches!(outcome(&third, "flaky"), RunOutcome::SkippedAlreadySent { .. }));

    let mails = sink.wait_for(2, Duration::from_secs(2)).await;
    assert_eq!(mails.len(), 1, "exactly one accepted message");
    let record = t.render_digest(date).await.unwrap().projects[0].delivery.clone().unwrap();
    assert_eq!((record.status.as_str(), record.attempts), ("sent", 2));
    assert!(record.error.is_none() && record.sent_at.is_some());
}

#[actix_rt::test]
async fn a_claim_left_by_a_crash_is_taken_over_only_once_stale() {
    let Some(sink) = Sink::start(0) else { return };
    let fx = Fixture::new();
    let t = fx.start(fx.config(Some(sink.port), &far_cron())).await;
    failing_audit(&fx, &t, "crashy").await;
    let date = today(&t);

    // A process that died mid-send leaves the row in `sending`.
    let ledger = Ledger::open(&t.config().ledger_path(), 2).await.unwrap();
    let set_claim = |claimed_at: String| {
        let date = date.to_string();
        ledger.write(move |tx| {
            tx.execute(
                "INSERT INTO digest_runs (date, project_name, recipients, status, claimed_at, attempts)
                 VALUES (?1, 'crashy', '[]', 'sending', ?2, 1)
                 ON CONFLICT (date, project_name) DO UPDATE SET claimed_at = excluded.claimed_at",
                deadpool_sqlite::rusqlite::params![date, claimed_at],
            )?;
            Ok(())
        })
    };
    set_claim(crafting_core::ledger::now()).await.unwrap();
    let fresh = t.run_digest_now(Some(date), false).await.unwrap();
    assert!(matches!(outcome(&fresh, "crashy"), RunOutcome::SkippedInProgress { .. }), "{fresh:?}");
    assert!(sink.messages().is_empty());

    let eleven_minutes_ago = chrono::Utc::now() - chrono::Duration::minutes(11);
    set_claim(eleven_minutes_ago.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .await
        .unwrap();
    let stale = t.run_digest_now(Some(date), false).await.unwrap();
    assert!(matches!(outcome(&stale, "crashy"), RunOutcome::Sent { attempt: 2, .. }), "{stale:?}");
    assert_eq!(sink.wait_for(1, Duration::from_secs(2)).await.len(), 1);
}
