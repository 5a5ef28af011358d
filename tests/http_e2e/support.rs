//! What every end-to-end test needs: the real binary on a free loopback port
//! with its own folders, an HTTP client, and a git repository made with the
//! `git` CLI.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::{Value, json};

/// How long anything in these tests may take before it counts as hung.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A running `crafting-table serve`, killed by pid when dropped.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Holds `data/`, `workspace/`, `caches/`, `repos/` and the server logs.
    pub root: tempfile::TempDir,
    /// The first admin bearer.
    pub admin: String,
    env: Vec<(String, String)>,
    starts: usize,
    client: Client,
}

impl Server {
    /// Starts a server with default settings plus `env`.
    pub fn start(env: &[(&str, &str)]) -> Server {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(root.path().join("repos")).expect("repos dir");
        let client =
            Client::builder().timeout(Duration::from_secs(120)).build().expect("HTTP client");
        let mut server = Server {
            child: None,
            base: String::new(),
            root,
            admin: String::new(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            starts: 0,
            client,
        };
        server.spawn();
        server.admin = std::fs::read_to_string(server.data_dir().join("admin-bearer.txt"))
            .expect("admin bearer file")
            .trim()
            .to_owned();
        server
    }

    /// The data folder.
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// The workspace folder.
    pub fn workspace_dir(&self) -> PathBuf {
        self.root.path().join("workspace")
    }

    /// The folder listed in `CRAFTING_LOCAL_GIT_ROOTS`.
    pub fn repos_dir(&self) -> PathBuf {
        self.root.path().join("repos")
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let port = free_port();
        self.base = format!("http://127.0.0.1:{port}");
        let log = std::fs::File::create(self.server_log(self.starts)).expect("server log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_crafting-table"));
        cmd.arg("serve")
            .current_dir(self.root.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.root.path())
            .env("RUST_LOG", "info")
            .env("CRAFTING_BIND", format!("127.0.0.1:{port}"))
            .env("CRAFTING_DATA_DIR", self.data_dir())
            .env("CRAFTING_WORKSPACE_DIR", self.workspace_dir())
            .env("CRAFTING_CACHES_DIR", self.root.path().join("caches"))
            .env("CRAFTING_LOCAL_GIT_ROOTS", self.repos_dir())
            .env("CRAFTING_RUNNER_WORKERS", "2")
            .env("CRAFTING_KILL_GRACE_SECS", "2")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("start crafting-table"));
        self.wait_ready();
    }

    fn server_log(&self, n: usize) -> PathBuf {
        self.root.path().join(format!("server-{n}.log"))
    }

    /// What the server has logged so far (all starts).
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|n| std::fs::read_to_string(self.server_log(n)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("crafting-table exited early ({status}):\n{}", self.logs());
            }
            // Any HTTP answer means it listens; /healthz may be refused by the allowlist.
            if self.client.get(format!("{}/healthz", self.base)).send().is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "crafting-table did not listen:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.stop_with(libc::SIGTERM)
    }

    /// Sends `signal` and waits for the process to exit.
    pub fn stop_with(&mut self, signal: libc::c_int) -> ExitStatus {
        let mut child = self.child.take().expect("server is running");
        let pid = child.id() as libc::pid_t;
        // SAFETY: plain syscall on the pid of a child this test started and has not reaped.
        unsafe { libc::kill(pid, signal) };
        let deadline = Instant::now() + PATIENCE * 2;
        loop {
            if let Some(status) = child.try_wait().expect("wait for server") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("crafting-table ignored SIGTERM:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the server again on the same folders after [`Server::stop`].
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "stop the server first");
        self.spawn();
    }

    /// A request to `path` with an optional bearer.
    pub fn request(&self, method: Method, path: &str, bearer: Option<&str>) -> RequestBuilder {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        req
    }

    /// Sends a request with an optional JSON body; returns status and body.
    pub fn call(
        &self,
        method: Method,
        path: &str,
        bearer: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self.request(method, path, Some(bearer));
        if let Some(b) = body {
            req = req.json(b);
        }
        json_of(req.send().expect("request sent"))
    }

    /// GET with a bearer.
    pub fn get(&self, path: &str, bearer: &str) -> (u16, Value) {
        self.call(Method::GET, path, bearer, None)
    }

    /// POST JSON with a bearer.
    pub fn post(&self, path: &str, bearer: &str, body: &Value) -> (u16, Value) {
        self.call(Method::POST, path, bearer, Some(body))
    }

    /// GET returning status and the raw body text, for byte-for-byte comparisons.
    pub fn get_text(&self, path: &str, bearer: &str) -> (u16, String) {
        let res = self.request(Method::GET, path, Some(bearer)).send().expect("request sent");
        (res.status().as_u16(), res.text().expect("body"))
    }

    /// Mints a token as the admin and returns its bearer.
    pub fn mint(&self, name: &str, is_admin: bool, ip_cidrs: &[&str]) -> String {
        let (status, body) = self.post(
            "/admin/tokens",
            &self.admin,
            &json!({"name": name, "is_admin": is_admin, "ip_cidrs": ip_cidrs}),
        );
        assert_eq!(status, 201, "{body}");
        body["bearer"].as_str().expect("bearer").to_owned()
    }

    /// Registers a project over the repository `repo` with the given recipes.
    pub fn create_project(&self, bearer: &str, name: &str, repo: &Path, recipes: Value) -> Value {
        let (status, body) = self.post("/projects", bearer, &project_spec(name, repo, recipes));
        assert_eq!(status, 201, "{body}");
        body["project"].clone()
    }

    /// Queues a recipe and returns the job id.
    pub fn enqueue(&self, bearer: &str, project: &str, body: Value) -> String {
        let (status, res) = self.post(&format!("/projects/{project}/jobs"), bearer, &body);
        assert_eq!(status, 202, "{res}");
        res["job_id"].as_str().expect("job_id").to_owned()
    }

    /// Polls `GET /jobs/{id}` until `done` holds for the job; returns the last answer.
    pub fn poll_job(&self, bearer: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (status, body) = self.get(&format!("/jobs/{id}"), bearer);
            assert_eq!(status, 200, "{body}");
            if done(&body["job"]) {
                return body;
            }
            assert!(Instant::now() < deadline, "job {id} never got there: {body}\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for a job to reach an end state; returns `{job, log_tail}`.
    pub fn wait_job(&self, bearer: &str, id: &str) -> Value {
        self.poll_job(bearer, id, |job| {
            !matches!(job["status"].as_str(), Some("queued" | "running"))
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL to this child's pid only, then reap it.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A project body with one root subproject.
pub fn project_spec(name: &str, repo: &Path, recipes: Value) -> Value {
    json!({
        "name": name,
        "git_url": repo.display().to_string(),
        "default_branch": "main",
        "subprojects": [{"path": ".", "language": "shell", "recipes": recipes}],
    })
}

/// Status and JSON body of a response.
pub fn json_of(res: Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().expect("body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text:?}"));
    (status, body)
}

/// Asserts the documented error shape and returns the code.
pub fn error_code(status: u16, body: &Value, want_status: u16) -> String {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["ok"], json!(false), "{body}");
    let message = body["error"].as_str().expect("error sentence");
    assert!(message.len() > 10 && message.ends_with('.'), "not a sentence: {message:?}");
    let code = body["code"].as_str().expect("code");
    assert!(
        !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
        "not snake_case: {code:?}"
    );
    code.to_owned()
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// Runs `git` in `dir`, failing the test when it fails; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.org"])
        .args(["-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
}

/// A repository at `<repos>/<name>` with three commits on `main`; returns
/// its path and the commit ids, oldest first.
pub fn make_repo(repos: &Path, name: &str) -> (PathBuf, Vec<String>) {
    let dir = repos.join(name);
    std::fs::create_dir_all(&dir).expect("repo dir");
    git(&dir, &["init", "-q", "-b", "main"]);
    let mut commits = Vec::new();
    let steps: [(&str, &str); 3] = [
        ("README.md", "# demo\nversion one\n"),
        ("src/check.sh", "#!/bin/sh\necho checking\n"),
        ("README.md", "# demo\nversion three\n"),
    ];
    for (i, (file, text)) in steps.iter().enumerate() {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write file");
        git(&dir, &["add", "."]);
        git(&dir, &["commit", "-q", "-m", &format!("step {}", i + 1)]);
        commits.push(git(&dir, &["rev-parse", "HEAD"]));
    }
    (dir, commits)
}

/// Reads a response body to the end as text.
pub fn body_text(mut res: Response) -> String {
    let mut text = String::new();
    res.read_to_string(&mut text).expect("read body");
    text
}
