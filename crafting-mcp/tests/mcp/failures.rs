//! Failures a client must see as clean tool errors, not crashes.

use std::process::Stdio;

use serde_json::json;

use crate::common::{Service, Session, free_port, mcp_binary};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_service_is_named_in_tool_errors() {
    let base_url = format!("http://127.0.0.1:{}", free_port());
    let token = "token-for-a-service-that-is-not-there";
    let session = Session::start(&base_url, token, &[token]).await;

    for tool in ["list_projects", "healthz"] {
        let err = session.err(tool, json!({})).await;
        assert_eq!(err["code"], json!("unreachable"), "{err}");
        let message = err["error"].as_str().unwrap();
        assert!(message.contains(&base_url), "{message}");
    }
    let err = session.err("get_job", json!({"job_id": "0190"})).await;
    assert_eq!(err["code"], json!("unreachable"));

    // Still serving after the errors.
    let tools = session.client.list_all_tools().await.expect("tools/list");
    assert!(tools.iter().any(|t| t.name == "wait_for_job"));
    let transcript = session.finish().await;
    assert!(transcript.stderr.contains(&base_url), "the probe failure is logged on stderr");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_token_exits_2_with_a_message_and_no_stdout() {
    let out = tokio::process::Command::new(mcp_binary())
        .env_remove("CRAFTING_TABLE_TOKEN")
        .env("CRAFTING_TABLE_BASE_URL", "http://127.0.0.1:9")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run crafting-table-mcp");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "stdout: {:?}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("CRAFTING_TABLE_TOKEN is not set"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_gives_clean_tool_errors() {
    let service = Service::start();
    let wrong = "ct_this-is-not-a-valid-token";
    let session = Session::start(&service.base_url, wrong, &[wrong, &service.admin_bearer]).await;

    // No admin tools for a token the service refuses.
    let tools = session.client.list_all_tools().await.expect("tools/list");
    assert!(!tools.iter().any(|t| t.name == "mint_token"));

    let err = session.err("list_projects", json!({})).await;
    assert_eq!(err["code"], json!("unauthorized"), "{err}");
    assert_eq!(err["http_status"], json!(401));
    assert!(err["error"].as_str().unwrap().contains("Bearer"), "the API's own sentence: {err}");

    // The open route still works, and the server is still alive.
    let health = session.ok("healthz", json!({})).await;
    assert!(health["runner"].is_object(), "{health}");
    let transcript = session.finish().await;
    assert!(transcript.stderr.contains("401"), "{}", transcript.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_are_refused_without_killing_the_server() {
    let service = Service::start();
    let session =
        Session::start(&service.base_url, &service.admin_bearer, &[&service.admin_bearer]).await;

    // Out of range: refused by the tool before any request.
    let err = session.err("get_job_log", json!({"job_id": "x", "lines": 5000})).await;
    assert_eq!(err["code"], json!("invalid_argument"), "{err}");
    let err = session.err("wait_for_job", json!({"job_id": "x", "timeout_secs": 0})).await;
    assert_eq!(err["code"], json!("invalid_argument"), "{err}");

    // A misspelt argument is reported as a tool error naming it, never ignored.
    let result = session
        .call_with("run_recipe", json!({"project": "p", "recipe": "test", "branch": "main"}), false)
        .await;
    assert_eq!(result.is_error, Some(true), "{:?}", result.content);
    let text = result.content.first().and_then(|c| c.as_text()).map(|t| t.text.clone());
    assert!(text.unwrap_or_default().contains("`branch`"), "{:?}", result.content);

    // A path segment cannot reach another route.
    let err = session.err("get_project", json!({"name": "../admin/tokens"})).await;
    assert_eq!(err["http_status"], json!(404), "{err}");

    assert!(session.ok("healthz", json!({})).await["runner"].is_object());
    session.finish().await;
}
