use reqwest::Method;
use serde_json::json;

use crate::support::{Server, body_text, error_code, make_repo};

#[test]
fn follow_streams_new_output_until_the_job_ends() {
    let server = Server::start(&[]);
    let (repo, _) = make_repo(&server.repos_dir(), "demo");
    let alice = server.mint("alice", false, &[]);
    server.create_project(
        &alice,
        "demo",
        &repo,
        json!({"drip": "for i in $(seq 1 30); do echo drip $i; sleep 0.1; done; echo all done"}),
    );
    let id = server.enqueue(&alice, "demo", json!({"recipe": "drip"}));

    // Start following while the job is queued or running; the answer ends
    // only when the job has ended and every line has been sent.
    let res = server
        .request(Method::GET, &format!("/jobs/{id}/log?follow=1"), Some(&alice))
        .send()
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let started_as = res.headers()["x-job-status"].to_str().unwrap().to_owned();
    assert!(["queued", "running"].contains(&started_as.as_str()), "{started_as}");
    let followed = body_text(res);
    let (_, view) = server.get(&format!("/jobs/{id}"), &alice);
    assert_eq!(view["job"]["status"], json!("succeeded"), "the stream ended before the job");
    let lines = recipe_lines(&followed);
    let expected: Vec<String> =
        (1..=30).map(|i| format!("drip {i}")).chain(["all done".to_owned()]).collect();
    assert_eq!(lines, expected);

    // The whole log read afterwards is byte-identical to what was followed.
    let (status, full) = server.get_text(&format!("/jobs/{id}/log"), &alice);
    assert_eq!(status, 200);
    assert_eq!(full, followed);

    // Following a finished job from an offset sends the rest and ends.
    let cut = followed.find("drip 30").unwrap();
    let (status, rest) = server.get_text(&format!("/jobs/{id}/log?follow=1&offset={cut}"), &alice);
    assert_eq!(status, 200);
    assert_eq!(rest, followed[cut..]);
    assert_eq!(recipe_lines(&rest), ["drip 30", "all done"]);
}

#[test]
fn range_and_offset_resume_a_large_log() {
    let server = Server::start(&[]);
    let (repo, _) = make_repo(&server.repos_dir(), "demo");
    let alice = server.mint("alice", false, &[]);
    server.create_project(&alice, "demo", &repo, json!({"count": "seq 1 200000"}));
    let id = server.enqueue(&alice, "demo", json!({"recipe": "count"}));
    let view = server.wait_job(&alice, &id);
    assert_eq!(view["job"]["status"], json!("succeeded"), "{view}");

    // The tail is the last 200 lines.
    let tail = view["log_tail"].as_str().unwrap();
    assert_eq!(tail.lines().count(), 200);
    assert_eq!(recipe_lines(tail).last(), Some(&"200000"));

    // The full log, much larger than one chunk, arrives whole.
    let res = server.request(Method::GET, &format!("/jobs/{id}/log"), Some(&alice)).send().unwrap();
    assert_eq!(res.headers()["accept-ranges"].to_str().unwrap(), "bytes");
    let declared: usize = res.headers()["content-length"].to_str().unwrap().parse().unwrap();
    let expected = body_text(res);
    assert_eq!(declared, expected.len());
    let numbers: Vec<String> = (1..=200_000).map(|i| i.to_string()).collect();
    assert_eq!(recipe_lines(&expected), numbers);
    assert!(expected.ends_with(tail), "the tail is the end of the log");
    let len = expected.len();

    // Range: bytes=N- resumes with 206 and a Content-Range.
    let n = 1_000_000;
    let res = server
        .request(Method::GET, &format!("/jobs/{id}/log"), Some(&alice))
        .header("range", format!("bytes={n}-"))
        .send()
        .unwrap();
    assert_eq!(res.status().as_u16(), 206);
    assert_eq!(
        res.headers()["content-range"].to_str().unwrap(),
        format!("bytes {n}-{}/{len}", len - 1)
    );
    assert_eq!(body_text(res), &expected[n..]);

    // Range: bytes=N-M is a closed slice.
    let res = server
        .request(Method::GET, &format!("/jobs/{id}/log"), Some(&alice))
        .header("range", "bytes=10-19")
        .send()
        .unwrap();
    assert_eq!(res.status().as_u16(), 206);
    assert_eq!(body_text(res), &expected[10..20]);

    // ?offset=N resumes with 200 and names the offset.
    let res = server
        .request(Method::GET, &format!("/jobs/{id}/log?offset={n}"), Some(&alice))
        .send()
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["x-log-offset"].to_str().unwrap(), n.to_string());
    assert_eq!(body_text(res), &expected[n..]);

    // Resuming at the end gets nothing new; past it is refused.
    let (status, empty) = server.get_text(&format!("/jobs/{id}/log?offset={len}"), &alice);
    assert_eq!((status, empty.as_str()), (200, ""));
    let (status, body) = server.get(&format!("/jobs/{id}/log?offset={}", len + 1), &alice);
    assert_eq!(error_code(status, &body, 416), "range_not_satisfiable");
    let res = server
        .request(Method::GET, &format!("/jobs/{id}/log"), Some(&alice))
        .header("range", format!("bytes={len}-"))
        .send()
        .unwrap();
    assert_eq!(res.status().as_u16(), 416);
    assert_eq!(res.headers()["content-range"].to_str().unwrap(), format!("bytes */{len}"));

    // Malformed resume requests are refused with a reason.
    for query in ["offset=-5", "offset=abc", "follow=maybe"] {
        let (status, body) = server.get(&format!("/jobs/{id}/log?{query}"), &alice);
        assert_eq!(error_code(status, &body, 400), "invalid_query", "{query}");
    }
    let res = server
        .request(Method::GET, &format!("/jobs/{id}/log?offset=3"), Some(&alice))
        .header("range", "bytes=5-")
        .send()
        .unwrap();
    let (status, body) = crate::support::json_of(res);
    assert_eq!(error_code(status, &body, 400), "invalid_range");
}

/// The lines a recipe printed, without the lines the engine adds to a log.
fn recipe_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| !l.starts_with("[crafting-table]")).collect()
}
