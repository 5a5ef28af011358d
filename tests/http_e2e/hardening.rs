use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Server, error_code, json_of, make_repo, project_spec};

/// Everything the ledger holds, as the admin sees it through the lists.
fn ledger(server: &Server) -> (Value, Value, Value) {
    let (_, projects) = server.get("/projects", &server.admin);
    let (_, tokens) = server.get("/admin/tokens", &server.admin);
    let (_, jobs) = server.get("/jobs?limit=500", &server.admin);
    (projects, tokens, jobs)
}

/// POSTs raw bytes with an optional content type; returns status and JSON body.
fn post_raw(
    server: &Server,
    path: &str,
    bearer: &str,
    ctype: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = server.request(Method::POST, path, Some(bearer)).body(body);
    if let Some(c) = ctype {
        req = req.header("content-type", c);
    }
    json_of(req.send().unwrap())
}

#[test]
fn bad_input_is_refused_with_a_reason_and_changes_nothing() {
    let server = Server::start(&[]);
    let (repo, _) = make_repo(&server.repos_dir(), "demo");
    let alice = server.mint("alice", false, &[]);
    server.create_project(&alice, "demo", &repo, json!({"test": "true"}));
    let before = ledger(&server);
    let json_type = Some("application/json");

    // Body shape and transport.
    let (s, b) = post_raw(&server, "/projects", &alice, json_type, b"{\"name\": ".to_vec());
    assert_eq!(error_code(s, &b, 400), "malformed_json");
    let (s, b) = post_raw(&server, "/projects", &alice, json_type, b"name=demo2".to_vec());
    assert_eq!(error_code(s, &b, 400), "malformed_json");
    let (s, b) = post_raw(&server, "/projects", &alice, json_type, Vec::new());
    assert_eq!(error_code(s, &b, 400), "malformed_json");
    let valid = serde_json::to_vec(&project_spec("demo2", &repo, json!({"t": "true"}))).unwrap();
    let (s, b) = post_raw(&server, "/projects", &alice, Some("text/plain"), valid.clone());
    assert_eq!(error_code(s, &b, 415), "unsupported_media_type");
    let (s, b) = post_raw(&server, "/projects", &alice, None, valid.clone());
    assert_eq!(error_code(s, &b, 415), "unsupported_media_type");
    let (s, b) =
        post_raw(&server, "/projects", &alice, Some("application/x-www-form-urlencoded"), valid);
    assert_eq!(error_code(s, &b, 415), "unsupported_media_type");

    // A JSON array that lists a body's fields in order is not a body.
    let (s, b) =
        post_raw(&server, "/projects/demo/jobs", &alice, json_type, br#"["test"]"#.to_vec());
    assert_eq!(error_code(s, &b, 422), "invalid_body");
    assert!(b["error"].as_str().unwrap().contains("JSON object"), "{b}");

    // Unknown fields and wrong types, at the top level and nested.
    let mut spec = project_spec("demo2", &repo, json!({"t": "true"}));
    spec["colour"] = json!("blue");
    let (s, b) = server.post("/projects", &alice, &spec);
    assert_eq!(error_code(s, &b, 422), "invalid_body");
    assert!(b["error"].as_str().unwrap().contains("colour"), "{b}");
    let mut spec = project_spec("demo2", &repo, json!({"t": "true"}));
    spec["subprojects"][0]["shell"] = json!("bash");
    let (s, b) = server.post("/projects", &alice, &spec);
    assert_eq!(error_code(s, &b, 422), "invalid_body");
    let mut spec = project_spec("demo2", &repo, json!({"t": "true"}));
    spec["name"] = json!(5);
    let (s, b) = server.post("/projects", &alice, &spec);
    assert_eq!(error_code(s, &b, 422), "invalid_body");

    // Names that would not be safe directory names.
    for name in ["../x", "a/b", ".", "..", "-x", "", ".hidden", "a b", &"n".repeat(65)] {
        let (s, b) =
            server.post("/projects", &alice, &project_spec(name, &repo, json!({"t": "true"})));
        assert_eq!(error_code(s, &b, 422), "invalid_name", "{name:?}");
    }
    let mut spec = project_spec("demo2", &repo, json!({"t": "true"}));
    spec["subprojects"][0]["path"] = json!("../outside");
    let (s, b) = server.post("/projects", &alice, &spec);
    assert_eq!(error_code(s, &b, 422), "invalid_subproject");
    let outside = server.root.path().join("elsewhere");
    std::fs::create_dir_all(&outside).unwrap();
    let (s, b) =
        server.post("/projects", &alice, &project_spec("demo2", &outside, json!({"t": "true"})));
    assert_eq!(error_code(s, &b, 422), "invalid_git_url");
    let (s, b) =
        server.post("/projects", &alice, &project_spec("demo", &repo, json!({"t": "true"})));
    assert_eq!(s, 409, "{b}");

    // Sizes: a 5 MB project name, and a body just over the 1 MiB limit.
    let huge = project_spec(&"n".repeat(5 * 1024 * 1024), &repo, json!({"t": "true"}));
    let (s, b) = server.post("/projects", &alice, &huge);
    assert_eq!(error_code(s, &b, 413), "body_too_large");
    let mut padded = project_spec("demo2", &repo, json!({"t": "true"}));
    padded["subprojects"][0]["recipes"]["t"] = json!(" ".repeat(1024 * 1024));
    let (s, b) = server.post("/projects", &alice, &padded);
    assert_eq!(error_code(s, &b, 413), "body_too_large");

    // Jobs for things the project does not have.
    let jobs = "/projects/demo/jobs";
    let (s, b) = server.post(jobs, &alice, &json!({"recipe": "deploy"}));
    assert_eq!(error_code(s, &b, 422), "unknown_recipe");
    assert!(b["error"].as_str().unwrap().contains("\"test\""), "names the recipes it has: {b}");
    let (s, b) = server.post(jobs, &alice, &json!({"recipe": "test", "subproject": "sdk/python"}));
    assert_eq!(error_code(s, &b, 422), "unknown_subproject");
    let (s, b) = server.post(jobs, &alice, &json!({"recipe": "test", "ref": "--upload-pack=evil"}));
    assert_eq!(error_code(s, &b, 422), "invalid_ref");
    let (s, b) = server.post(jobs, &alice, &json!({"recipe": "test", "priority": 1}));
    assert_eq!(error_code(s, &b, 422), "invalid_body");
    let (s, b) = server.post(jobs, &alice, &json!({"recipe": "../../bin/sh"}));
    assert_eq!(error_code(s, &b, 422), "invalid_recipe");

    // Tokens.
    let (s, b) = server.post(
        "/admin/tokens",
        &server.admin,
        &json!({"name": "x", "ip_cidrs": ["10.0.0.0/40"]}),
    );
    assert_eq!(error_code(s, &b, 422), "invalid_cidr");
    let (s, b) = server.post("/admin/tokens", &server.admin, &json!({"name": "alice"}));
    assert_eq!(error_code(s, &b, 409), "token_exists");
    let (s, b) = server.post("/admin/tokens", &server.admin, &json!({"name": "a/b"}));
    assert_eq!(error_code(s, &b, 422), "invalid_name");

    // Query strings: negative or non-numeric values are refused; large ones are capped.
    for q in [
        "limit=-1",
        "limit=abc",
        "limit=",
        "limit=1e3",
        "status=done",
        "sort=asc",
        "limit=1&limit=2",
        "limit=0",
    ] {
        let (s, b) = server.get(&format!("/jobs?{q}"), &alice);
        let code = error_code(s, &b, 400);
        assert!(code == "invalid_query" || code == "unknown_parameter", "{q}: {code}");
    }
    for q in ["limit=100000", "limit=99999999999999999999999999"] {
        let (s, b) = server.get(&format!("/jobs?{q}"), &alice);
        assert_eq!(s, 200, "{q}: {b}");
    }
    let (s, b) = server.get("/patches?limit=-3", &alice);
    assert_eq!(error_code(s, &b, 400), "invalid_query");

    // Unknown routes and wrong methods answer JSON too.
    let (s, b) = server.get("/nope", &alice);
    assert_eq!(error_code(s, &b, 404), "not_found");
    let (s, b) = server.call(Method::PATCH, "/projects/demo", &alice, None);
    assert_eq!(error_code(s, &b, 405), "method_not_allowed");

    // None of it reached the ledger.
    assert_eq!(ledger(&server), before);
    assert!(!server.data_dir().join("logs").join("demo2").exists());
}
