//! A stand-in for a Gitea server's pull-request endpoint on loopback.
//!
//! It checks every request against Gitea's documented API for creating a
//! pull request (`POST /api/v1/repos/{owner}/{repo}/pulls`, header
//! `Authorization: token <token>`, a JSON `CreatePullRequestOption` body with
//! string `head`, `base`, `title` and `body`) and answers as Gitea does: 201
//! with the new pull request. A request that breaks the contract gets 422 and
//! is recorded as a violation, which the tests assert never happens. It can
//! also answer 500 or never answer, to test the service's error paths.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// How the stand-in answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 201 with a pull request.
    Create,
    /// 500 with Gitea's error body.
    Fail,
    /// Reads the request and never answers.
    Hang,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Request line path.
    pub path: String,
    /// `authorization` header.
    pub authorization: String,
    /// Parsed body.
    pub body: Value,
}

/// A running stand-in; its thread ends with the test process.
pub struct Gitea {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    violations: Arc<Mutex<Vec<String>>>,
}

/// Fields of Gitea's `CreatePullRequestOption`.
const KNOWN_FIELDS: &[&str] =
    &["assignee", "assignees", "base", "body", "due_date", "head", "labels", "milestone", "title"];

impl Gitea {
    /// Starts a stand-in answering in `mode` and accepting `token`.
    pub fn start(mode: Mode, token: &str) -> Gitea {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let (s, v, t, base) = (seen.clone(), violations.clone(), token.to_owned(), url.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (s, v, t, base) = (s.clone(), v.clone(), t.clone(), base.clone());
                std::thread::spawn(move || serve(stream, mode, &t, &base, &s, &v));
            }
        });
        Gitea { url, seen, violations }
    }

    /// Requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// Requests that broke the API contract, described.
    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().expect("lock").clone()
    }
}

fn serve(
    stream: TcpStream,
    mode: Mode,
    token: &str,
    base: &str,
    seen: &Mutex<Vec<Seen>>,
    violations: &Mutex<Vec<String>>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let header = |name: &str| {
        headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default()
    };
    let length: usize = header("content-length").parse().unwrap_or(0);
    let mut raw = vec![0u8; length];
    if reader.read_exact(&mut raw).is_err() {
        return;
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("").to_owned());
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    seen.lock().expect("lock").push(Seen {
        path: path.clone(),
        authorization: header("authorization"),
        body: body.clone(),
    });

    let mut problems = Vec::new();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let path_ok = method == "POST"
        && segments.len() == 6
        && segments[..3] == ["api", "v1", "repos"]
        && segments[5] == "pulls"
        && !segments[3].is_empty()
        && !segments[4].is_empty();
    if !path_ok {
        problems
            .push(format!("{method} {path} is not POST /api/v1/repos/{{owner}}/{{repo}}/pulls"));
    }
    if header("authorization") != format!("token {token}") {
        problems.push("authorization is not `token <token>`".to_owned());
    }
    if !header("content-type").starts_with("application/json") {
        problems.push(format!("content-type {:?}", header("content-type")));
    }
    match body.as_object() {
        None => problems.push("body is not a JSON object".to_owned()),
        Some(fields) => {
            for k in fields.keys() {
                if !KNOWN_FIELDS.contains(&k.as_str()) {
                    problems.push(format!("unknown field {k:?}"));
                }
            }
            for k in ["head", "base", "title", "body"] {
                if fields.get(k).and_then(Value::as_str).is_none_or(str::is_empty) {
                    problems.push(format!("{k} missing or not a non-empty string"));
                }
            }
        }
    }
    let mut stream = stream;
    if !problems.is_empty() {
        violations.lock().expect("lock").extend(problems.iter().cloned());
        let body = json!({"message": problems.join("; "), "url": format!("{base}/api/swagger")});
        return respond(&mut stream, 422, &body);
    }
    match mode {
        Mode::Hang => std::thread::sleep(Duration::from_secs(120)),
        Mode::Fail => respond(
            &mut stream,
            500,
            &json!({"message": "internal error while creating the pull request", "url": ""}),
        ),
        Mode::Create => {
            let number = seen.lock().expect("lock").len();
            let (owner, repo) = (segments[3], segments[4]);
            let html = format!("{base}/{owner}/{repo}/pulls/{number}");
            respond(
                &mut stream,
                201,
                &json!({
                    "id": 1000 + number,
                    "number": number,
                    "url": html,
                    "html_url": html,
                    "diff_url": format!("{html}.diff"),
                    "state": "open",
                    "title": body["title"],
                    "body": body["body"],
                    "head": {"ref": body["head"], "label": body["head"]},
                    "base": {"ref": body["base"], "label": body["base"]},
                    "merged": false,
                }),
            )
        }
    }
}

fn respond(stream: &mut TcpStream, status: u16, body: &Value) {
    let text = body.to_string();
    let reason = match status {
        201 => "Created",
        422 => "Unprocessable Entity",
        _ => "Internal Server Error",
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json;charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = stream.flush();
}
