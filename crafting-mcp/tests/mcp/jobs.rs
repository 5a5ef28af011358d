//! The main flow: register, run, wait, read findings and logs.

use serde_json::json;

use crate::common::{Service, Session, register, run_to_end, structured};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_recipe_runs_to_findings_and_a_log_tail() {
    let service = Service::start();
    let session =
        Session::start(&service.base_url, &service.admin_bearer, &[&service.admin_bearer]).await;

    let project = register(
        &session,
        &service,
        "demo",
        json!({"fail": "sleep 2; echo hello; exit 1", "pass": "sh hello.sh"}),
    )
    .await;
    assert_eq!(project["project"]["name"], json!("demo"));
    let listed = session.ok("list_projects", json!({})).await;
    assert_eq!(listed["projects"][0]["name"], json!("demo"));

    // Enqueue, then wait with a progress token: the job sleeps, so we hear progress.
    let queued = session.ok("run_recipe", json!({"project": "demo", "recipe": "fail"})).await;
    let job_id = queued["job_id"].as_str().expect("job_id").to_owned();
    assert_eq!(queued["job"]["recipe"], json!("fail"));
    let waited = session
        .call_with("wait_for_job", json!({"job_id": job_id, "timeout_secs": 120}), true)
        .await;
    assert_ne!(waited.is_error, Some(true), "{:?}", waited.content);
    let done = structured(&waited);
    assert_eq!(done["finished"], json!(true), "{done}");
    assert_eq!(done["job"]["status"], json!("failed"), "{done}");
    assert_eq!(done["job"]["exit_code"], json!(1));
    assert!(done["log_tail"].as_str().unwrap().contains("hello"), "{done}");
    let progress = session.recorder.progress.lock().unwrap().clone();
    assert!(!progress.is_empty(), "no progress notification while waiting");
    assert!(progress.windows(2).all(|w| w[0].progress < w[1].progress), "progress increases");
    assert!(progress.iter().all(|p| p.total == Some(120.0)));

    // Findings: the failed recipe is one, filterable by kind and severity.
    let findings = session.ok("get_findings", json!({"job_id": job_id})).await;
    let list = findings["findings"].as_array().expect("findings list");
    assert!(!list.is_empty(), "a failed recipe leaves a finding: {findings}");
    assert_eq!(findings["total"].as_u64(), Some(list.len() as u64));
    for field in ["id", "job_id", "kind", "severity", "message", "fingerprint"] {
        assert!(list[0].get(field).is_some(), "{field} in {}", list[0]);
    }
    let kinds: Vec<&str> = list.iter().filter_map(|f| f["kind"].as_str()).collect();
    assert!(kinds.contains(&"recipe_fail"), "{kinds:?}");
    let only_fail =
        session.ok("get_findings", json!({"job_id": job_id, "kind": ["recipe_fail"]})).await;
    assert!(only_fail["findings"].as_array().unwrap().iter().all(|f| f["kind"] == "recipe_fail"));
    let critical =
        session.ok("get_findings", json!({"job_id": job_id, "min_severity": "critical"})).await;
    assert_eq!(critical["matched"], json!(0), "{critical}");
    assert_eq!(critical["total"], findings["total"]);

    // Log: the bounded tail by byte range, and the job view's tail.
    let log = session.ok("get_job_log", json!({"job_id": job_id, "lines": 5})).await;
    assert!(log["text"].as_str().unwrap().contains("hello"), "{log}");
    assert_eq!(log["status"], json!("failed"));
    assert!(log["lines"].as_u64().unwrap() <= 5);
    let job = session.ok("get_job", json!({"job_id": job_id, "log_tail_lines": 1})).await;
    assert_eq!(job["job"]["id"], json!(job_id));
    assert!(job["log_tail"].as_str().unwrap().lines().count() <= 1);

    // The job is listed, and filters reach the API.
    let jobs = session.ok("list_jobs", json!({"project": "demo", "status": "failed"})).await;
    let ids: Vec<&str> =
        jobs["jobs"].as_array().unwrap().iter().filter_map(|j| j["id"].as_str()).collect();
    assert_eq!(ids, [job_id.as_str()]);

    // A passing recipe after an update that adds a recipe.
    let updated = session
        .ok(
            "update_project",
            json!({"name": "demo", "subprojects": [{"path": ".", "language": "shell",
                "recipes": {"fail": "exit 1", "pass": "sh hello.sh", "extra": "true"}}]}),
        )
        .await;
    assert!(updated["project"]["subprojects"][0]["recipes"]["extra"].is_string(), "{updated}");
    let passed = run_to_end(&session, "demo", "pass").await;
    assert_eq!(passed["job"]["status"], json!("succeeded"));
    assert!(passed["log_tail"].as_str().unwrap().contains("hello from the repo"));

    session.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_log_comes_back_bounded() {
    let service = Service::start();
    let session =
        Session::start(&service.base_url, &service.admin_bearer, &[&service.admin_bearer]).await;
    register(&session, &service, "spam", json!({"spam": "seq 1 100000"})).await;
    let done = run_to_end(&session, "spam", "spam").await;
    let job_id = done["job"]["id"].as_str().unwrap().to_owned();
    assert_eq!(done["job"]["status"], json!("succeeded"), "{done}");
    assert!(done["job"]["log_bytes"].as_u64().unwrap() > 500_000, "{}", done["job"]);
    assert!(done["log_tail"].as_str().unwrap().lines().count() <= 50);

    // The most a client may ask for: 2000 lines, 256 KiB.
    let log = session
        .ok("get_job_log", json!({"job_id": job_id, "lines": 2000, "max_bytes": 262144}))
        .await;
    let text = log["text"].as_str().unwrap();
    assert_eq!(log["lines"], json!(2000), "{}", &text[..100.min(text.len())]);
    assert_eq!(text.lines().count(), 2000);
    // The engine may add its own closing lines after the recipe's output.
    let numbers: Vec<u32> = text.lines().filter_map(|l| l.parse().ok()).collect();
    assert_eq!(numbers.last(), Some(&100_000), "{}", &text[text.len().saturating_sub(300)..]);
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "consecutive whole lines");
    assert!(numbers.len() >= 1990, "{} numbered lines", numbers.len());
    assert_eq!(log["truncated"], json!(true));

    // A byte cap below the line count wins, and only whole lines come back.
    let small = session.ok("get_job_log", json!({"job_id": job_id, "max_bytes": 1000})).await;
    let text = small["text"].as_str().unwrap();
    assert!(text.len() <= 1000, "{}", text.len());
    assert!(text.lines().any(|l| l == "100000"), "{text}");
    let first = text.lines().next().unwrap();
    assert!(
        first.parse::<u32>().is_ok_and(|n| n > 99_000) || first.starts_with('['),
        "a whole first line: {first:?}"
    );

    // The whole exchange stays small: no frame carries the whole log.
    let transcript = session.finish().await;
    let biggest = transcript.frames.iter().map(String::len).max().unwrap_or(0);
    assert!(biggest < 400 * 1024, "largest frame {biggest} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_become_tool_errors_with_message_and_code() {
    let service = Service::start();
    let session =
        Session::start(&service.base_url, &service.admin_bearer, &[&service.admin_bearer]).await;

    let missing =
        session.err("get_job", json!({"job_id": "00000000000000000000000000000000"})).await;
    assert_eq!(missing["code"], json!("not_found"));
    assert_eq!(missing["http_status"], json!(404));
    assert!(
        missing["error"].as_str().unwrap().starts_with("No job by that name or id"),
        "{missing}"
    );

    register(&session, &service, "dup", json!({"test": "true"})).await;
    let again = session
        .err(
            "register_project",
            json!({"name": "dup", "git_url": service.repo.to_str().unwrap(),
                   "subprojects": [{"language": "shell", "recipes": {"test": "true"}}]}),
        )
        .await;
    assert_eq!(again["http_status"], json!(409), "{again}");

    let unknown_recipe =
        session.err("run_recipe", json!({"project": "dup", "recipe": "nope"})).await;
    assert!(unknown_recipe["http_status"].as_u64().unwrap() >= 400, "{unknown_recipe}");
    assert!(unknown_recipe["error"].as_str().unwrap().contains("nope"), "{unknown_recipe}");

    let done = run_to_end(&session, "dup", "test").await;
    let job_id = done["job"]["id"].as_str().unwrap();
    let patch = session.err("request_patch", json!({"job_id": job_id})).await;
    assert_eq!(patch["code"], json!("patcher_unconfigured"), "{patch}");
    assert_eq!(patch["http_status"], json!(503));

    let deleted = session.ok("delete_project", json!({"name": "dup"})).await;
    assert_eq!(deleted["deleted"], json!("dup"));
    let gone = session.err("get_project", json!({"name": "dup"})).await;
    assert_eq!(gone["code"], json!("not_found"));

    session.finish().await;
}
