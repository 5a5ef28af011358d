use std::time::Duration;

use crafting_core::digest::RunOutcome;

use crate::support::*;

#[actix_rt::test]
async fn hostile_finding_text_cannot_add_headers_or_markup() {
    let Some(sink) = Sink::start(0) else { return };
    let fx = Fixture::new();
    let message = "boom\r\nBcc: evil@attacker.test\r\nSubject: pwned\n\r\n\
                   <script>alert('x')</script> <a href=\"http://evil.test\">click</a> & \
                   ünïcødé ✓ 测试\u{0}\u{1b}[31m";
    let test_name = "tests::weird\r\nX-Injected: 1";
    let file = "src/<b>bold</b>\r\nX-Path: 1/ñ.rs";
    let log = finding_line("test_fail", "error", test_name, Some(file), Some(7), message, None);
    let repo = fx.repo("hostile", &[("out.txt", &log)]);
    let t = fx.start(fx.config(Some(sink.port), &far_cron())).await;
    let recipes = [("test", "cat out.txt; exit 1")];
    let s = spec("hostile", &repo, &recipes, &["dev@example.org"], &["test_fail"]);
    t.create_project(&admin(), s).await.unwrap();
    let job = run(&t, "hostile", "test").await;
    let stored = t.findings(&admin(), &job.id).await.unwrap();
    assert_eq!(stored[0].finding.message, message, "the ledger keeps the text as found");

    let date = today(&t);
    let report = t.run_digest_now(Some(date), false).await.unwrap();
    assert!(matches!(report.projects[0].outcome, RunOutcome::Sent { .. }), "{report:?}");
    let mails = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.rcpt_tos, ["dev@example.org"], "no recipient was added");

    // The header block holds only what we wrote.
    let parsed = mail.parsed();
    let keys: Vec<String> =
        parsed.headers.iter().map(|h| h.get_key().to_ascii_lowercase()).collect();
    for bad in ["bcc", "x-injected", "x-path"] {
        assert!(!keys.contains(&bad.to_owned()), "{bad} injected: {keys:?}");
    }
    assert_eq!(keys.iter().filter(|k| *k == "subject").count(), 1);
    assert_eq!(mail.subject(), format!("[crafting-table] hostile {date}: 1 failed, 1 new finding"));
    let raw = String::from_utf8_lossy(&mail.raw);
    let head = raw.split("\r\n\r\n").next().unwrap();
    assert!(!head.contains("evil@attacker.test") && !head.contains("pwned"), "{head}");

    let (text, html) = mail.parts();
    // Text: the message is there, non-ASCII intact, control bytes dropped.
    assert!(text.contains("ünïcødé ✓ 测试[31m"), "{text}");
    assert!(text.contains("Bcc: evil@attacker.test"), "kept as body text: {text}");
    assert!(!text.contains('\u{0}') && !text.contains('\u{1b}'));
    // HTML: every piece of markup from the finding is escaped.
    assert!(!html.contains("<script>") && !html.contains("<b>bold</b>"), "{html}");
    assert!(!html.contains("href=\"http://evil.test\""), "{html}");
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"), "{html}");
    assert!(html.contains("src/&lt;b&gt;bold&lt;/b&gt;"), "{html}");
    assert!(html.contains("ünïcødé ✓ 测试"), "{html}");
    assert!(html.trim_end().ends_with("</html>"), "{html}");
}

#[actix_rt::test]
async fn lone_dots_in_every_line_ending_survive_smtp() {
    let Some(sink) = Sink::start(0) else { return };
    let fx = Fixture::new();
    let variants = ["\n.\n", "\r\n.\r\n", "\n.\r\n", "\r.\r"];
    let log: String = variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let msg = format!("alpha-{i}{v}omega-{i}");
            let code = format!("L{i}");
            finding_line("lint", "warn", &code, Some("a.txt"), Some(1), &msg, None)
        })
        .collect();
    let repo = fx.repo("dots", &[("out.txt", &log), ("a.txt", "x\n")]);
    let t = fx.start(fx.config(Some(sink.port), &far_cron())).await;
    let s = spec("dots", &repo, &[("lint", "cat out.txt")], &["dots@example.org"], &["lint_warn"]);
    t.create_project(&admin(), s).await.unwrap();
    run(&t, "dots", "lint").await;

    let report = t.run_digest_now(Some(today(&t)), false).await.unwrap();
    assert!(matches!(report.projects[0].outcome, RunOutcome::Sent { .. }), "{report:?}");
    let mails = sink.wait_for(2, Duration::from_secs(3)).await;
    assert_eq!(mails.len(), 1, "one message: DATA did not end early");
    let raw = String::from_utf8_lossy(&mails[0].raw);
    assert!(raw.contains("\r\n.\r\n"), "the lone dot reached the server as a line: {raw}");
    let (text, html) = mails[0].parts();
    for i in 0..variants.len() {
        assert!(html.contains(&format!("alpha-{i}\n.\nomega-{i}")), "variant {i}: {html}");
        let indented = format!("        alpha-{i}\n        .\n        omega-{i}");
        assert!(text.contains(&indented), "variant {i}: {text}");
    }
    assert!(html.trim_end().ends_with("</html>"));
    assert!(text.contains("Project: http://ct.test:8810/projects/dots"), "the text part is whole");
}
