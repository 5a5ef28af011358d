use std::time::Instant;

use reqwest::Method;
use serde_json::json;

use crate::support::{Server, error_code, make_repo};

#[test]
fn cancel_stops_a_running_sleep_and_takes_queued_jobs_off_the_queue() {
    let server = Server::start(&[("CRAFTING_RUNNER_WORKERS", "1")]);
    let (repo, _) = make_repo(&server.repos_dir(), "demo");
    let alice = server.mint("alice", false, &[]);
    server.create_project(&alice, "demo", &repo, json!({"slow": "echo started; sleep 30"}));

    let running = server.enqueue(&alice, "demo", json!({"recipe": "slow"}));
    let queued = server.enqueue(&alice, "demo", json!({"recipe": "slow"}));
    // Running, and the recipe has printed its first line.
    server.poll_job(&alice, &running, |job| job["status"] == json!("running"));
    let deadline = Instant::now() + crate::support::PATIENCE;
    while !server
        .get_text(&format!("/jobs/{running}/log"), &alice)
        .1
        .lines()
        .any(|l| l == "started")
    {
        assert!(Instant::now() < deadline, "the recipe never started");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (_, view) = server.get(&format!("/jobs/{queued}"), &alice);
    assert_eq!(view["job"]["status"], json!("queued"), "one worker: the second job waits");

    // Cancelling the waiting job needs no process to stop.
    let (status, body) = server.post(&format!("/jobs/{queued}/cancel"), &alice, &json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["job"]["status"], json!("cancelled"));

    // Cancelling the running one stops the sleep long before its 30 s.
    let started = Instant::now();
    let (status, body) = server.post(&format!("/jobs/{running}/cancel"), &alice, &json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["job"]["status"], json!("cancelled"), "{body}");
    assert!(started.elapsed().as_secs() < 30, "cancel waited for the sleep to end");

    // Cancelling again is a conflict, said plainly.
    let (status, body) = server.post(&format!("/jobs/{running}/cancel"), &alice, &json!({}));
    assert_eq!(error_code(status, &body, 409), "job_finished");
    let (_, cancelled) = server.get("/jobs?status=cancelled", &alice);
    assert_eq!(cancelled["jobs"].as_array().unwrap().len(), 2);
}

#[test]
fn a_restart_keeps_tokens_projects_jobs_and_logs() {
    let mut server = Server::start(&[]);
    let (repo, commits) = make_repo(&server.repos_dir(), "demo");
    let alice = server.mint("alice", false, &["127.0.0.0/8"]);
    server.create_project(&alice, "demo", &repo, json!({"show": "cat README.md; exit 2"}));
    let id = server.enqueue(&alice, "demo", json!({"recipe": "show"}));
    let before = server.wait_job(&alice, &id);
    let (_, log_before) = server.get_text(&format!("/jobs/{id}/log"), &alice);
    let (_, findings_before) = server.get(&format!("/jobs/{id}/findings"), &alice);
    let (_, tokens_before) = server.get("/admin/tokens", &server.admin);
    let admin_file = std::fs::read_to_string(server.data_dir().join("admin-bearer.txt")).unwrap();

    // Between two requests, the process stops on Ctrl-C (exit 0) and starts again.
    let status = server.stop_with(libc::SIGINT);
    assert!(status.success(), "SIGINT should end the service with 0, got {status}");
    server.start_again();

    let (status, project) = server.get("/projects/demo", &alice);
    assert_eq!(status, 200, "alice's bearer still works: {project}");
    let (_, after) = server.get(&format!("/jobs/{id}"), &alice);
    assert_eq!(after["job"], before["job"]);
    assert_eq!(after["job"]["sha"], json!(commits[2]));
    let (status, log_after) = server.get_text(&format!("/jobs/{id}/log"), &alice);
    assert_eq!((status, &log_after), (200, &log_before));
    assert!(log_after.contains("version three"));
    let (_, findings_after) = server.get(&format!("/jobs/{id}/findings"), &alice);
    assert_eq!(findings_after, findings_before);
    let (_, tokens_after) = server.get("/admin/tokens", &server.admin);
    assert_eq!(tokens_after, tokens_before);
    let admin_file_after =
        std::fs::read_to_string(server.data_dir().join("admin-bearer.txt")).unwrap();
    assert_eq!(admin_file_after, admin_file, "a second start must not mint another admin");

    // And it keeps working: a new job after the restart.
    let id2 = server.enqueue(&alice, "demo", json!({"recipe": "show"}));
    assert_eq!(server.wait_job(&alice, &id2)["job"]["exit_code"], json!(2));
}

#[test]
fn shutdown_stops_running_jobs_after_the_grace_and_exits_zero() {
    let mut server = Server::start(&[("CRAFTING_SHUTDOWN_GRACE_SECS", "1")]);
    let (repo, _) = make_repo(&server.repos_dir(), "demo");
    let alice = server.mint("alice", false, &[]);
    server.create_project(&alice, "demo", &repo, json!({"slow": "echo started; sleep 30"}));
    let id = server.enqueue(&alice, "demo", json!({"recipe": "slow"}));
    server.poll_job(&alice, &id, |job| job["status"] == json!("running"));

    let started = Instant::now();
    let status = server.stop();
    assert!(status.success(), "exit status {status}:\n{}", server.logs());
    assert!(started.elapsed().as_secs() < 30, "shutdown waited for the sleep to end");

    // After a new start the job is recorded as stopped by the shutdown.
    server.start_again();
    let (_, view) = server.get(&format!("/jobs/{id}"), &alice);
    assert_eq!(view["job"]["status"], json!("failed"), "{view}");
    assert_eq!(view["job"]["reason"], json!("service shut down, job stopped"), "{view}");
    let res = server.request(Method::GET, "/healthz", None).send().unwrap();
    assert_eq!(res.status().as_u16(), 200);
}
