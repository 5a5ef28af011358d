use std::time::Duration;

use chrono::{Timelike, Utc};
use crafting_core::digest::RunOutcome;

use crate::support::*;

fn lint(codes: &[(&str, u32)]) -> String {
    codes
        .iter()
        .map(|(code, line)| {
            let msg = format!("{code} here");
            finding_line("lint", "warn", code, Some("src/lib.rs"), Some(*line), &msg, None)
        })
        .collect()
}

#[actix_rt::test]
async fn the_timer_fires_and_the_next_digest_leads_with_what_changed() {
    let Some(sink) = Sink::start(0) else { return };
    let fx = Fixture::new();
    let source = "fn one() {}\nfn two() {}\nfn three() {}\n";
    let first = lint(&[("L1", 1), ("L2", 2)]);
    let repo = fx.repo("moving", &[("lint.txt", &first), ("src/lib.rs", source)]);
    let before = fx.start(fx.config(Some(sink.port), &far_cron())).await;
    let s =
        spec("moving", &repo, &[("lint", "cat lint.txt")], &["dev@example.org"], &["lint_warn"]);
    before.create_project(&admin(), s).await.unwrap();
    let job_a = run(&before, "moving", "lint").await;

    // An engine whose digest fires a few seconds from now: job A is in the
    // window that closes then, and the real timer sends it.
    let fire = (Utc::now() + chrono::Duration::seconds(5)).with_timezone(&LA);
    let cron = format!("{} {} {} * * *", fire.second(), fire.minute(), fire.hour());
    let t = fx.start(fx.config(Some(sink.port), &cron)).await;
    let day_one = fire.date_naive();
    let mails = sink.wait_for(1, Duration::from_secs(60)).await;
    assert_eq!(mails.len(), 1, "the scheduled digest arrived");
    assert_eq!(mails[0].subject(), format!("[crafting-table] moving {day_one}: 2 new findings"));
    let (text, _) = mails[0].parts();
    assert!(text.contains(&format!("/jobs/{}", job_a.id)), "{text}");
    assert!(
        text.contains(
            "What changed since the jobs before this window:\n  2 new, 0 fixed, 0 still open."
        ),
        "{text}"
    );
    let record = t.render_digest(day_one).await.unwrap().projects[0].delivery.clone().unwrap();
    assert_eq!(record.status, "sent");

    // The next day's job: L1 fixed, L2 still there, L3 new.
    commit(&repo, &[("lint.txt", &lint(&[("L2", 2), ("L3", 3)]))]);
    let job_b = run(&t, "moving", "lint").await;
    let day_two = day_one.succ_opt().unwrap();
    assert_eq!(today(&t), day_two, "job B ended after the fire time");
    let report = t.run_digest_now(Some(day_two), false).await.unwrap();
    assert!(matches!(report.projects[0].outcome, RunOutcome::Sent { .. }), "{report:?}");
    let mails = sink.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 2);
    assert_eq!(
        mails[1].subject(),
        format!("[crafting-table] moving {day_two}: 1 new finding, 1 fixed")
    );
    let (text, html) = mails[1].parts();
    let lead =
        format!("What changed since the digest of {day_one}:\n  1 new, 1 fixed, 1 still open.");
    assert!(text.contains(&lead), "{text}");
    let new_at = text.find("  New:\n    - [warn] lint L3 at src/lib.rs:3").expect("L3 new");
    let fixed_at = text.find("  Fixed:\n    - [warn] lint L1 at src/lib.rs:1").expect("L1 fixed");
    let jobs_at = text.find("Jobs (1):").unwrap();
    assert!(new_at < fixed_at && fixed_at < jobs_at, "changes lead the mail: {text}");
    assert!(text.contains(&format!("/jobs/{}", job_b.id)));
    assert!(!text.contains(&format!("/jobs/{}", job_a.id)), "job A belongs to the day before");
    assert!(html.contains("<strong>1 new</strong>, 1 fixed, 1 still open."), "{html}");

    let day = t.render_digest(day_two).await.unwrap();
    let changes = &day.projects[0].changes;
    assert_eq!(changes.since_digest.as_deref(), Some(day_one.to_string().as_str()));
    assert_eq!(changes.compared[0].base_job_id.as_deref(), Some(job_a.id.as_str()));
    assert_eq!((changes.new[0].code.as_str(), changes.fixed[0].code.as_str()), ("L3", "L1"));
}
