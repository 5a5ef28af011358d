use reqwest::Method;
use serde_json::json;

use crate::support::{Server, error_code, make_repo, project_spec};

/// A job id of the right shape that no job has.
const MISSING_JOB: &str = "0190aaaaaaaa7bbbbccccdddddddddddd";

#[test]
fn another_tokens_resources_answer_exactly_like_missing_ones() {
    let server = Server::start(&[]);
    let (repo, _) = make_repo(&server.repos_dir(), "demo");
    let alice = server.mint("alice", false, &[]);
    let bob = server.mint("bob", false, &[]);
    server.create_project(&alice, "demo", &repo, json!({"fail": "echo nope; exit 1"}));
    let job = server.enqueue(&alice, "demo", json!({"recipe": "fail"}));
    server.wait_job(&alice, &job);
    let (_, findings) = server.get(&format!("/jobs/{job}/findings"), &alice);
    assert_eq!(findings["findings"].as_array().unwrap().len(), 1, "alice sees her finding");

    // Bob asks for alice's project and job by every route, and for ones that
    // do not exist: status and body are byte-for-byte the same.
    let pairs = [
        ("/projects/demo".to_owned(), "/projects/nothing-here".to_owned()),
        (format!("/jobs/{job}"), format!("/jobs/{MISSING_JOB}")),
        (format!("/jobs/{job}/log"), format!("/jobs/{MISSING_JOB}/log")),
        (format!("/jobs/{job}/log?follow=1"), format!("/jobs/{MISSING_JOB}/log?follow=1")),
        (format!("/jobs/{job}/findings"), format!("/jobs/{MISSING_JOB}/findings")),
        (
            format!("/jobs/{job}/findings?compare=previous"),
            format!("/jobs/{MISSING_JOB}/findings?compare=previous"),
        ),
    ];
    for (foreign, missing) in &pairs {
        let (s1, b1) = server.get_text(foreign, &bob);
        let (s2, b2) = server.get_text(missing, &bob);
        assert_eq!(s1, 404, "{foreign}: {b1}");
        assert_eq!((s1, &b1), (s2, &b2), "{foreign} and {missing} differ");
    }
    let writes = [
        (Method::POST, format!("/jobs/{job}/cancel"), format!("/jobs/{MISSING_JOB}/cancel"), None),
        (
            Method::POST,
            format!("/jobs/{job}/patches"),
            format!("/jobs/{MISSING_JOB}/patches"),
            Some(json!({"finding_id": 1})),
        ),
        (
            Method::POST,
            "/projects/demo/jobs".to_owned(),
            "/projects/nothing-here/jobs".to_owned(),
            Some(json!({"recipe": "fail"})),
        ),
        (
            Method::PUT,
            "/projects/demo".to_owned(),
            "/projects/nothing-here".to_owned(),
            Some(project_spec("demo", &repo, json!({"x": "true"}))),
        ),
        (Method::DELETE, "/projects/demo".to_owned(), "/projects/nothing-here".to_owned(), None),
    ];
    for (method, foreign, missing, body) in &writes {
        let send = |path: &str| {
            let mut req = server.request(method.clone(), path, Some(&bob));
            if let Some(b) = body {
                req = req.json(b);
            }
            let res = req.send().unwrap();
            (res.status().as_u16(), res.text().unwrap())
        };
        let (s1, b1) = send(foreign);
        let (s2, b2) = send(missing);
        assert_eq!(s1, 404, "{method} {foreign}: {b1}");
        assert_eq!((s1, &b1), (s2, &b2), "{method} {foreign} and {missing} differ");
    }

    // Nothing bob tried changed alice's project or job.
    let (status, project) = server.get("/projects/demo", &alice);
    assert_eq!(status, 200);
    assert_eq!(
        project["project"]["subprojects"][0]["recipes"],
        json!({"fail": "echo nope; exit 1"})
    );
    let (_, view) = server.get(&format!("/jobs/{job}"), &alice);
    assert_eq!(view["job"]["status"], json!("failed"));

    // Lists never show another token's rows; the admin sees all.
    let bob_repo = make_repo(&server.repos_dir(), "bobs").0;
    server.create_project(&bob, "bobs", &bob_repo, json!({"ok": "true"}));
    let bob_job = server.enqueue(&bob, "bobs", json!({"recipe": "ok"}));
    server.wait_job(&bob, &bob_job);
    let names = |bearer: &str| {
        let (_, list) = server.get("/projects", bearer);
        let mut v: Vec<String> = list["projects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&alice), ["demo"]);
    assert_eq!(names(&bob), ["bobs"]);
    assert_eq!(names(&server.admin), ["bobs", "demo"]);
    let job_ids = |path: &str, bearer: &str| {
        let (_, list) = server.get(path, bearer);
        list["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(job_ids("/jobs", &alice), [job.as_str()]);
    assert_eq!(job_ids("/jobs", &bob), [bob_job.as_str()]);
    assert_eq!(job_ids("/jobs?project=demo", &bob), Vec::<String>::new());
    assert_eq!(job_ids("/jobs", &server.admin).len(), 2);
    // The admin may read alice's job.
    let (status, _) = server.get(&format!("/jobs/{job}/findings"), &server.admin);
    assert_eq!(status, 200);

    // The patch loop is not configured: the owner gets a 503 that says what is missing.
    let (status, body) = server.post(&format!("/jobs/{job}/patches"), &alice, &json!({}));
    assert_eq!(error_code(status, &body, 503), "patcher_unconfigured");
    let msg = body["error"].as_str().unwrap();
    assert!(msg.contains("CRAFTING_AGENT_KIND") && msg.contains("CRAFTING_GITHUB_TOKEN"), "{msg}");
    let res = server.request(Method::POST, &format!("/jobs/{job}/patches"), Some(&alice)).send();
    assert_eq!(res.unwrap().status().as_u16(), 503, "an empty body is fine");
    // Attempts can still be listed (there are none) and read (none exists).
    let (status, body) = server.get("/patches?limit=5", &alice);
    assert_eq!((status, body["patches"].clone()), (200, json!([])));
    let (status, body) = server.get("/patches/1", &bob);
    assert_eq!(error_code(status, &body, 404), "not_found");
    let (status, body) = server.post(&format!("/jobs/{job}/patches"), &alice, &json!({"x": 1}));
    assert_eq!(error_code(status, &body, 422), "invalid_body");
}

#[test]
fn admin_routes_answer_non_admins_like_unknown_routes() {
    let server = Server::start(&[]);
    let alice = server.mint("alice", false, &[]);
    let (unknown_status, unknown_body) = server.get_text("/no/such/route", &alice);
    assert_eq!(unknown_status, 404);
    let attempts = [
        (Method::GET, "/admin/tokens", None),
        (Method::POST, "/admin/tokens", Some(json!({"name": "mallory", "is_admin": true}))),
        (Method::DELETE, "/admin/tokens/admin", None),
        (Method::GET, "/digests/2026-03-01", None),
        (Method::GET, "/digests/not-a-date", None),
        (Method::POST, "/admin/digest/run-now", Some(json!({"dry_run": true}))),
        (Method::GET, "/admin/anything-else", None),
        (Method::GET, "/%61dmin/tokens", None),
    ];
    for (method, path, body) in &attempts {
        let mut req = server.request(method.clone(), path, Some(&alice));
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().unwrap();
        let status = res.status().as_u16();
        let text = res.text().unwrap();
        assert_eq!((status, &text), (unknown_status, &unknown_body), "{method} {path}");
    }
    // Nothing happened: no token was minted or revoked.
    let (_, tokens) = server.get("/admin/tokens", &server.admin);
    let tokens = tokens["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    assert!(tokens.iter().all(|t| t["revoked_at"].is_null()));

    // The admin gets through to the checks behind the gate.
    let (status, body) = server.get("/digests/2026-03-01", &server.admin);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["digest"]["date"], json!("2026-03-01"));
    let (status, body) = server.get("/digests/2026-02-30", &server.admin);
    assert_eq!(error_code(status, &body, 422), "invalid_date");
    let (status, body) =
        server.post("/admin/digest/run-now", &server.admin, &json!({"dry_run": true}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["report"]["dry_run"], json!(true));
    let (status, body) =
        server.post("/admin/digest/run-now", &server.admin, &json!({"dry_run": true, "when": 1}));
    assert_eq!(error_code(status, &body, 422), "invalid_body");

    // A revoked token is refused like an unknown one.
    let (status, body) = server.call(Method::DELETE, "/admin/tokens/alice", &server.admin, None);
    assert_eq!(status, 200, "{body}");
    let (status, revoked) = server.get_text("/projects", &alice);
    let (status2, unknown) = server.get_text("/projects", "ct_not_a_real_token");
    assert_eq!(status, 401);
    assert_eq!((status, revoked), (status2, unknown));
    let res = server.request(Method::GET, "/projects", None).send().unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert_eq!(res.headers()["www-authenticate"].to_str().unwrap(), "Bearer");
    let (status, body) = server.call(Method::DELETE, "/admin/tokens/alice", &server.admin, None);
    assert_eq!(error_code(status, &body, 404), "not_found");
}
