//! The harness: a real `crafting-table serve` on a free loopback port, a git
//! repository made with the git CLI, and MCP sessions with the real
//! `crafting-table-mcp` binary whose stdout is recorded on its way to the
//! rmcp client.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResult, NumberOrString, ProgressNotificationParam,
    ProgressToken, RequestMetaObject,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::task::JoinHandle;

/// Longest a single tool call may take in these tests.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(180);

/// The MCP server binary under test.
pub fn mcp_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_crafting-table-mcp"))
}

/// The `crafting-table` binary: `CRAFTING_TABLE_BIN`, or next to the MCP
/// binary in the same target folder.
pub fn service_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CRAFTING_TABLE_BIN") {
        return PathBuf::from(path);
    }
    mcp_binary().parent().expect("binary has a folder").join("crafting-table")
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A running `crafting-table serve` in its own temporary folder, stopped on drop.
pub struct Service {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// The first admin's bearer, from `<data>/admin-bearer.txt`.
    pub admin_bearer: String,
    /// A git repository under the allowed local root, on branch `main`.
    pub repo: PathBuf,
    dir: tempfile::TempDir,
}

impl Service {
    /// Starts the service and waits until it answers; makes the repository.
    pub fn start() -> Service {
        let bin = service_binary();
        assert!(
            bin.exists(),
            "{} is missing: build it first with `cargo build -p crafting-table` into the same \
             target folder (or point CRAFTING_TABLE_BIN at it)",
            bin.display()
        );
        let dir = tempfile::tempdir().expect("temporary folder");
        let repos = dir.path().join("repos");
        let repo = repos.join("demo");
        make_repo(&repo);

        let port = free_port();
        let data = dir.path().join("data");
        let log = std::fs::File::create(dir.path().join("service.log")).expect("log file");
        let child = Command::new(&bin)
            .arg("serve")
            .current_dir(dir.path())
            .env("CRAFTING_BIND", format!("127.0.0.1:{port}"))
            .env("CRAFTING_DATA_DIR", &data)
            .env("CRAFTING_WORKSPACE_DIR", dir.path().join("workspace"))
            .env("CRAFTING_CACHES_DIR", dir.path().join("caches"))
            .env("CRAFTING_LOCAL_GIT_ROOTS", &repos)
            .env("CRAFTING_RUNNER_WORKERS", "2")
            .env("CRAFTING_SHUTDOWN_GRACE_SECS", "2")
            .env("CRAFTING_KILL_GRACE_SECS", "1")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut service = Service {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            admin_bearer: String::new(),
            repo,
            dir,
        };

        // Ready once the port accepts connections and the bearer file is written.
        let bearer_file = data.join("admin-bearer.txt");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = service.child.try_wait() {
                panic!("crafting-table serve exited early ({status}):\n{}", service.log());
            }
            let listening = TcpStream::connect(("127.0.0.1", port)).is_ok();
            if listening && let Ok(text) = std::fs::read_to_string(&bearer_file) {
                let bearer = text.trim().to_owned();
                if !bearer.is_empty() {
                    service.admin_bearer = bearer;
                    return service;
                }
            }
            assert!(Instant::now() < deadline, "service not ready in 60 s:\n{}", service.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What the service wrote to stdout and stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("service.log")).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // SIGTERM by pid for a clean stop, then SIGKILL if it lingers.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) with a pid we spawned and have not reaped yet.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A repository with one commit on `main`.
fn make_repo(path: &Path) {
    std::fs::create_dir_all(path).expect("repo folder");
    std::fs::write(path.join("README.md"), "demo repository for crafting-table-mcp tests\n")
        .expect("write file");
    std::fs::write(path.join("hello.sh"), "echo hello from the repo\n").expect("write file");
    let git = |args: &[&str]| {
        run(Command::new("git")
            .args(["-c", "user.name=Test", "-c", "user.email=test@example.org"])
            .args(["-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"])
            .args(args)
            .current_dir(path)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", path));
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "initial"]);
}

/// The client side: records progress notifications.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    /// Every progress notification received.
    pub progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
}

impl ClientHandler for Recorder {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().expect("progress lock").push(params);
    }
}

/// What a finished session left behind.
#[derive(Debug)]
pub struct Transcript {
    /// Every line the server wrote to stdout.
    pub frames: Vec<String>,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

/// One MCP session with a `crafting-table-mcp` child process.
pub struct Session {
    /// The rmcp client.
    pub client: RunningService<RoleClient, Recorder>,
    /// The handler, to read progress notifications.
    pub recorder: Recorder,
    child: tokio::process::Child,
    frames: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    tasks: Vec<JoinHandle<()>>,
    secrets: Vec<String>,
}

impl Session {
    /// Starts the server with this base URL and token, and initialises a client.
    /// `secrets` must never show up on its stdout or stderr.
    pub async fn start(base_url: &str, token: &str, secrets: &[&str]) -> Session {
        let mut child = tokio::process::Command::new(mcp_binary())
            .env_remove("CRAFTING_TABLE_HTTP_TIMEOUT_SECS")
            .env("CRAFTING_TABLE_BASE_URL", base_url)
            .env("CRAFTING_TABLE_TOKEN", token)
            .env("CRAFTING_MCP_LOG", "debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start crafting-table-mcp");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr_pipe = child.stderr.take().expect("piped stderr");

        // The tee: every stdout line is recorded, then handed to the client.
        let frames = Arc::new(Mutex::new(Vec::new()));
        let (mut to_client, client_reader) = tokio::io::duplex(1 << 20);
        let recorded = frames.clone();
        let tee = tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                recorded.lock().expect("frames lock").push(line.clone());
                if to_client.write_all(line.as_bytes()).await.is_err()
                    || to_client.write_all(b"\n").await.is_err()
                {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        let drain = tokio::spawn(async move {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr_pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock().expect("stderr lock").extend_from_slice(&buf[..n]);
            }
        });

        let recorder = Recorder::default();
        let client = tokio::time::timeout(
            Duration::from_secs(30),
            recorder.clone().serve((client_reader, stdin)),
        )
        .await
        .expect("initialize within 30 s")
        .expect("initialize succeeds");
        Session {
            client,
            recorder,
            child,
            frames,
            stderr,
            tasks: vec![tee, drain],
            secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Calls a tool; `progress` adds a progress token to the request.
    pub async fn call_with(&self, tool: &str, args: Value, progress: bool) -> CallToolResult {
        let Value::Object(args) = args else { panic!("tool arguments must be an object") };
        let mut params = CallToolRequestParams::new(tool.to_owned()).with_arguments(args);
        if progress {
            let mut meta = RequestMetaObject::new();
            meta.set_progress_token(ProgressToken(NumberOrString::String("wait-1".into())));
            params.meta = Some(meta);
        }
        tokio::time::timeout(CALL_TIMEOUT, self.client.call_tool(params))
            .await
            .unwrap_or_else(|_| panic!("{tool} did not answer in time"))
            .unwrap_or_else(|e| panic!("{tool} failed at the protocol level: {e}"))
    }

    /// Calls a tool that must succeed; returns its structured content.
    pub async fn ok(&self, tool: &str, args: Value) -> Value {
        let result = self.call_with(tool, args, false).await;
        assert_ne!(result.is_error, Some(true), "{tool} failed: {:?}", result.content);
        structured(&result)
    }

    /// Calls a tool that must fail with a tool error; returns its structured content.
    pub async fn err(&self, tool: &str, args: Value) -> Value {
        let result = self.call_with(tool, args, false).await;
        assert_eq!(result.is_error, Some(true), "{tool} should fail: {:?}", result.content);
        structured(&result)
    }

    /// What the server logged so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("stderr lock")).into_owned()
    }

    /// Closes the client, lets the server exit, and checks the whole stdout:
    /// every line is a JSON-RPC 2.0 message and no secret appears anywhere.
    pub async fn finish(mut self) -> Transcript {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.client.close()).await;
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(status) => {
                let status = status.expect("wait for crafting-table-mcp");
                assert!(status.success(), "crafting-table-mcp exited with {status}");
            }
            Err(_) => panic!("crafting-table-mcp did not exit after the client closed stdin"),
        }
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        let frames = self.frames.lock().expect("frames lock").clone();
        let stderr = self.stderr();
        assert!(!frames.is_empty(), "the server wrote no frames");
        for line in &frames {
            let frame: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:.200}"));
            assert_eq!(frame.get("jsonrpc"), Some(&json!("2.0")), "not JSON-RPC 2.0: {line:.200}");
            assert!(
                frame.get("id").is_some() || frame.get("method").is_some(),
                "neither a response nor a notification: {line:.200}"
            );
        }
        for secret in &self.secrets {
            assert!(!frames.iter().any(|f| f.contains(secret.as_str())), "a secret reached stdout");
            assert!(!stderr.contains(secret.as_str()), "a secret reached stderr");
        }
        Transcript { frames, stderr }
    }
}

/// The structured content of a result, or its first text block parsed as JSON.
pub fn structured(result: &CallToolResult) -> Value {
    if let Some(value) = &result.structured_content {
        return value.clone();
    }
    let text = result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// Registers the test repository as `name` with the given recipes at the root.
pub async fn register(session: &Session, service: &Service, name: &str, recipes: Value) -> Value {
    session
        .ok(
            "register_project",
            json!({
                "name": name,
                "git_url": service.repo.to_str().expect("utf-8 path"),
                "subprojects": [{"path": ".", "language": "shell", "recipes": recipes}],
            }),
        )
        .await
}

/// Runs a recipe and waits for its end; returns the `wait_for_job` answer.
pub async fn run_to_end(session: &Session, project: &str, recipe: &str) -> Value {
    let queued = session.ok("run_recipe", json!({"project": project, "recipe": recipe})).await;
    let job_id = queued["job_id"].as_str().expect("job_id in the answer").to_owned();
    let done = session.ok("wait_for_job", json!({"job_id": job_id, "timeout_secs": 120})).await;
    assert_eq!(done["finished"], json!(true), "job did not end: {done}");
    done
}
