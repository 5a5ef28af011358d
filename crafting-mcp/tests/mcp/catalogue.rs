//! What a client sees before calling anything: server info, tools, schemas.

use serde_json::{Value, json};

use crate::common::{Service, Session};

const USER_TOOLS: &[&str] = &[
    "healthz",
    "list_projects",
    "get_project",
    "register_project",
    "update_project",
    "delete_project",
    "run_recipe",
    "get_job",
    "wait_for_job",
    "get_job_log",
    "get_findings",
    "list_jobs",
    "cancel_job",
    "request_patch",
    "list_patches",
    "get_patch",
];

const ADMIN_TOOLS: &[&str] =
    &["list_tokens", "mint_token", "revoke_token", "render_digest", "run_digest_now"];

async fn tool_map(session: &Session) -> serde_json::Map<String, Value> {
    let tools = session.client.list_all_tools().await.expect("tools/list");
    tools
        .into_iter()
        .map(|t| (t.name.to_string(), serde_json::to_value(&t).expect("tool as JSON")))
        .collect()
}

fn names(map: &serde_json::Map<String, Value>) -> Vec<&str> {
    let mut names: Vec<&str> = map.keys().map(String::as_str).collect();
    names.sort_unstable();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_session_offers_every_tool_with_typed_schemas() {
    let service = Service::start();
    let session =
        Session::start(&service.base_url, &service.admin_bearer, &[&service.admin_bearer]).await;

    // Server info carries our name and crate version, and the tools capability.
    let info = session.client.peer_info().expect("server info after initialize");
    let implementation = info.server_info.clone().expect("server implementation");
    assert_eq!(implementation.name, "crafting-table-mcp");
    assert_eq!(implementation.version, env!("CARGO_PKG_VERSION"));
    assert!(info.capabilities.tools.is_some());

    let tools = tool_map(&session).await;
    let mut expected: Vec<&str> = USER_TOOLS.iter().chain(ADMIN_TOOLS).copied().collect();
    expected.sort_unstable();
    assert_eq!(names(&tools), expected);

    // Every tool says what it does.
    for (name, tool) in &tools {
        let description = tool["description"].as_str().unwrap_or_default();
        assert!(description.len() > 40, "{name}: {description:?}");
        assert_eq!(tool["inputSchema"]["type"], json!("object"), "{name}");
    }

    // Typed inputs: required fields, enums and bounds reach the client.
    let run = &tools["run_recipe"]["inputSchema"];
    let mut required: Vec<&str> =
        run["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    required.sort_unstable();
    assert_eq!(required, ["project", "recipe"]);
    assert!(run["properties"]["ref"].is_object(), "{run}");
    assert_eq!(run["additionalProperties"], json!(false));

    let wait = &tools["wait_for_job"]["inputSchema"]["properties"]["timeout_secs"];
    assert_eq!(
        (wait["minimum"].as_u64(), wait["maximum"].as_u64()),
        (Some(1), Some(3600)),
        "{wait}"
    );
    let log_lines = &tools["get_job_log"]["inputSchema"]["properties"]["lines"];
    assert_eq!(log_lines["maximum"].as_u64(), Some(2000), "{log_lines}");

    let schema_text = tools["get_findings"]["inputSchema"].to_string();
    for severity in ["critical", "error", "warn", "info"] {
        assert!(schema_text.contains(&format!("\"{severity}\"")), "{severity} in {schema_text}");
    }
    for kind in ["lint", "cve", "test_fail", "recipe_fail"] {
        assert!(schema_text.contains(&format!("\"{kind}\"")), "{kind} in {schema_text}");
    }

    let register = &tools["register_project"]["inputSchema"];
    assert!(register.to_string().contains("recipes"), "{register}");

    // Annotations: deleting is destructive, reading is read-only.
    assert_eq!(tools["delete_project"]["annotations"]["destructiveHint"], json!(true));
    assert_eq!(tools["get_job"]["annotations"]["readOnlyHint"], json!(true));

    session.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_session_has_no_admin_tools() {
    let service = Service::start();
    let admin =
        Session::start(&service.base_url, &service.admin_bearer, &[&service.admin_bearer]).await;
    let minted = admin.ok("mint_token", json!({"name": "agent-1"})).await;
    let bearer = minted["bearer"].as_str().expect("bearer in mint answer").to_owned();
    assert_eq!(minted["token"]["is_admin"], json!(false));
    let listed = admin.ok("list_tokens", json!({})).await;
    let tokens = listed["tokens"].as_array().expect("tokens list");
    assert!(tokens.iter().any(|t| t["name"] == "agent-1"), "{listed}");
    assert!(!listed.to_string().contains(&bearer), "token lists carry no secrets");
    admin.finish().await;

    let user = Session::start(&service.base_url, &bearer, &[&bearer, &service.admin_bearer]).await;
    let tools = tool_map(&user).await;
    let mut expected = USER_TOOLS.to_vec();
    expected.sort_unstable();
    assert_eq!(names(&tools), expected);
    // A user token works for its own resources.
    let projects = user.ok("list_projects", json!({})).await;
    assert_eq!(projects["projects"], json!([]));
    let transcript = user.finish().await;
    assert!(transcript.stderr.contains("serving on stdio"), "{}", transcript.stderr);
}
