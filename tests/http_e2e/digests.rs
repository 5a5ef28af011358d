use serde_json::json;

use crate::support::*;

#[test]
fn without_smtp_the_digest_is_off_but_renders_and_dry_runs() {
    // A schedule late in the UTC day, so that today's digest (window still
    // open) holds the job this test runs.
    let server =
        Server::start(&[("CRAFTING_DIGEST_TZ", "UTC"), ("CRAFTING_DIGEST_CRON", "0 59 23 * * *")]);
    let (repo, _) = make_repo(&server.repos_dir(), "mailme");
    let (status, body) = server.post(
        "/projects",
        &server.admin,
        &json!({
            "name": "mailme",
            "git_url": repo.display().to_string(),
            "subprojects": [{"path": ".", "language": "shell", "recipes": {"audit": "exit 2"}}],
            "notify": {"email": "team@example.org"}
        }),
    );
    assert_eq!(status, 201, "{body}");
    let job = server.enqueue(&server.admin, "mailme", json!({"recipe": "audit"}));
    server.wait_job(&server.admin, &job);

    let logs = server.logs();
    assert_eq!(
        logs.matches("digest disabled — CRAFTING_SMTP_HOST not set").count(),
        1,
        "the start-up line is logged exactly once:\n{logs}"
    );

    // A dry run renders a digest; today's holds the failed audit.
    let today = chrono::Utc::now().date_naive().to_string();
    let (status, body) = server.post(
        "/admin/digest/run-now",
        &server.admin,
        &json!({"dry_run": true, "date": today}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["report"]["projects"][0]["result"], json!("dry_run"), "{body}");
    let text = body.to_string();
    assert!(text.contains("mailme"), "{body}");
    assert!(text.contains(&job), "the failed audit job is listed: {body}");

    // Rendering a day works for an admin only.
    let (status, day) = server.get(&format!("/digests/{today}"), &server.admin);
    assert_eq!(status, 200, "{day}");
    assert_eq!(day["digest"]["date"], json!(today));
    let user = server.mint("reader", false, &[]);
    let (status, _) = server.get(&format!("/digests/{today}"), &user);
    assert_eq!(status, 404);
    let (status, body) = server.get("/digests/2026-02-30", &server.admin);
    assert_eq!(error_code(status, &body, 422), "invalid_date");

    // Sending for real needs an SMTP relay.
    let (status, body) =
        server.post("/admin/digest/run-now", &server.admin, &json!({"dry_run": false}));
    assert_eq!(error_code(status, &body, 503), "smtp_unconfigured");
    assert!(body["error"].as_str().unwrap().contains("CRAFTING_SMTP_HOST"));
}
