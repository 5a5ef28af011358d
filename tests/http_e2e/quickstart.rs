use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Server, body_text, error_code, make_repo};

fn recipes() -> Value {
    json!({"test": "cat README.md && sh src/check.sh", "fail": "echo broken build; exit 3"})
}

#[test]
fn quickstart_walk_from_token_to_cascade_delete() {
    let server = Server::start(&[]);
    let (repo, commits) = make_repo(&server.repos_dir(), "demo");

    // Liveness needs no token.
    let res = server.request(Method::GET, "/healthz", None).send().unwrap();
    let (status, health) = crate::support::json_of(res);
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["ok"], json!(true));
    assert_eq!(health["runner"]["workers"], json!(2));
    let mode = health["isolation"].as_str().unwrap_or_default();
    assert!(["bwrap", "user", "none"].contains(&mode), "{health}");

    // The admin mints a token for a team; the list shows no secrets.
    let alice = server.mint("alice", false, &[]);
    assert!(alice.starts_with("ct_"));
    let (status, tokens) = server.get("/admin/tokens", &server.admin);
    assert_eq!(status, 200);
    let names: Vec<&str> =
        tokens["tokens"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["admin", "alice"]);
    assert!(!tokens.to_string().contains(&alice), "a listing must not show bearers");

    // Project CRUD.
    let project = server.create_project(&alice, "demo", &repo, recipes());
    assert_eq!(project["owner"], json!("alice"));
    assert_eq!(project["languages"], json!(["shell"]));
    let (status, list) = server.get("/projects", &alice);
    assert_eq!(status, 200);
    assert_eq!(list["projects"].as_array().unwrap().len(), 1);
    let (status, got) = server.get("/projects/demo", &alice);
    assert_eq!((status, &got["project"]["name"]), (200, &json!("demo")));
    let mut spec = crate::support::project_spec("demo", &repo, recipes());
    spec["subprojects"][0]["recipes"]["lines"] = json!("wc -l README.md");
    let (status, updated) = server.call(Method::PUT, "/projects/demo", &alice, Some(&spec));
    assert_eq!(status, 200, "{updated}");
    assert!(updated["project"]["subprojects"][0]["recipes"]["lines"].is_string());

    // A passing job at the default branch.
    let ok_id = server.enqueue(&alice, "demo", json!({"recipe": "test"}));
    let view = server.wait_job(&alice, &ok_id);
    assert_eq!(view["job"]["status"], json!("succeeded"), "{view}");
    assert_eq!(view["job"]["exit_code"], json!(0));
    assert_eq!(view["job"]["sha"], json!(commits[2]));
    let tail = view["log_tail"].as_str().unwrap();
    assert!(tail.contains("version three") && tail.contains("checking"), "{tail}");
    let res =
        server.request(Method::GET, &format!("/jobs/{ok_id}/log"), Some(&alice)).send().unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let log = body_text(res);
    assert!(log.contains("version three"), "{log}");
    let (status, findings) = server.get(&format!("/jobs/{ok_id}/findings"), &alice);
    assert_eq!(status, 200);
    assert_eq!(findings["findings"], json!([]));

    // A job at an older commit sees that commit's files.
    let old_id = server.enqueue(&alice, "demo", json!({"recipe": "test", "ref": commits[0]}));
    let view = server.wait_job(&alice, &old_id);
    // The first commit has no src/check.sh, so the recipe fails there.
    assert_eq!(view["job"]["sha"], json!(commits[0]));
    assert!(view["log_tail"].as_str().unwrap().contains("version one"), "{view}");

    // A failing job yields a finding; a second run compares against the first.
    let fail1 = server.enqueue(&alice, "demo", json!({"recipe": "fail", "subproject": "."}));
    let view = server.wait_job(&alice, &fail1);
    assert_eq!(view["job"]["status"], json!("failed"), "{view}");
    assert_eq!(view["job"]["exit_code"], json!(3));
    let (_, findings) = server.get(&format!("/jobs/{fail1}/findings"), &alice);
    let list = findings["findings"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{findings}");
    assert_eq!(list[0]["kind"], json!("recipe_fail"));
    assert_eq!(list[0]["code"], json!("exit_3"));
    let fail2 = server.enqueue(&alice, "demo", json!({"recipe": "fail"}));
    server.wait_job(&alice, &fail2);
    let (status, cmp) = server.get(&format!("/jobs/{fail2}/findings?compare=previous"), &alice);
    assert_eq!(status, 200, "{cmp}");
    assert_eq!(cmp["base_job_id"], json!(fail1));
    assert_eq!(
        (cmp["new"].as_array().unwrap().len(), cmp["open"].as_array().unwrap().len()),
        (0, 1),
        "{cmp}"
    );
    assert_eq!(cmp["fixed"], json!([]));
    let (_, cmp_explicit) = server.get(&format!("/jobs/{fail2}/findings?compare={fail1}"), &alice);
    assert_eq!(cmp_explicit["open"], cmp["open"]);
    let (status, sarif) = server.get(&format!("/jobs/{fail2}/findings?format=sarif"), &alice);
    assert_eq!(status, 200, "{sarif}");
    assert_eq!(sarif["version"], json!("2.1.0"));
    let run = &sarif["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], json!("crafting-table"));
    assert_eq!(run["results"].as_array().unwrap().len(), 1, "{sarif}");
    assert_eq!(run["results"][0]["ruleId"], json!("exit_3"));
    let (status, body) =
        server.get(&format!("/jobs/{fail2}/findings?format=sarif&compare=previous"), &alice);
    assert_eq!(error_code(status, &body, 400), "invalid_query");

    // Lists: newest first, filtered, limited.
    let (_, jobs) = server.get("/jobs?project=demo", &alice);
    let ids: Vec<&str> =
        jobs["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [fail2.as_str(), &fail1, &old_id, &ok_id]);
    let (_, failed) = server.get("/jobs?status=failed&limit=500", &alice);
    assert!(failed["jobs"].as_array().unwrap().len() >= 2);
    let (_, one) = server.get("/jobs?limit=1", &alice);
    assert_eq!(one["jobs"].as_array().unwrap().len(), 1);

    // Deleting the project removes its jobs, findings, logs and workspace.
    let log_dir = server.data_dir().join("logs").join("demo");
    assert!(log_dir.join(format!("{ok_id}.log")).exists(), "log file where the engine keeps it");
    assert!(server.workspace_dir().join("demo").exists(), "bare clone was made");
    let (status, body) = server.call(Method::DELETE, "/projects/demo", &alice, None);
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.get("/projects/demo", &alice);
    assert_eq!(error_code(status, &body, 404), "not_found");
    for id in [&ok_id, &fail1, &fail2] {
        let (status, body) = server.get(&format!("/jobs/{id}"), &alice);
        assert_eq!(status, 404, "{body}");
        let (status, _) = server.get(&format!("/jobs/{id}/findings"), &alice);
        assert_eq!(status, 404);
    }
    let (_, jobs) = server.get("/jobs", &server.admin);
    assert_eq!(jobs["jobs"], json!([]));
    assert!(!log_dir.exists(), "logs of a deleted project must be gone");
    assert!(
        !server.workspace_dir().join("demo").exists(),
        "workspace of a deleted project must be gone"
    );

    // The access log names tokens, never bearers.
    let logs = server.logs();
    assert!(logs.contains("alice"), "access log should name the token");
    assert!(!logs.contains(&alice) && !logs.contains(&server.admin), "a bearer reached the log");
    assert!(logs.contains("admin-bearer.txt"), "first start logs the bearer file path");
}
