//! Shared helpers: throwaway git repositories and engines.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crafting_core::{Caller, Config, CraftingTable, Job, JobRequest, ProjectSpec};
use tempfile::TempDir;

/// Runs git in `dir`, panicking with its output on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.org"])
        .args(["-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Writes a file (creating folders) relative to `dir`.
pub fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A test fixture: a temp folder with `repos/` (allowed local git root) and
/// `engine/` (data, workspace, caches).
pub struct Fixture {
    pub dir: TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::Builder::new().prefix("ct-core-").tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("repos")).unwrap();
        Fixture { dir }
    }

    /// A fixture in a folder of `base` rather than the system's temporary folder.
    pub fn new_in(base: &Path) -> Fixture {
        let dir = tempfile::Builder::new().prefix("ct-core-").tempdir_in(base).unwrap();
        std::fs::create_dir_all(dir.path().join("repos")).unwrap();
        Fixture { dir }
    }

    pub fn repos(&self) -> PathBuf {
        self.dir.path().join("repos")
    }

    /// A fresh repository `name` with one commit of `files`.
    pub fn repo(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let p = self.repos().join(name);
        std::fs::create_dir_all(&p).unwrap();
        git(&p, &["init", "-q"]);
        for (f, t) in files {
            write(&p, f, t);
        }
        git(&p, &["add", "-A"]);
        git(&p, &["commit", "-q", "-m", "initial"]);
        p
    }

    pub fn config(&self) -> Config {
        let mut c = Config::new(self.dir.path().join("engine"));
        c.local_git_roots = vec![self.repos()];
        c.kill_grace = Duration::from_secs(2);
        c.runner_workers = 2;
        c
    }

    pub async fn start(&self) -> CraftingTable {
        CraftingTable::start(self.config()).await.expect("engine starts")
    }
}

pub fn admin() -> Caller {
    Caller::admin("admin")
}

/// A project spec with one subproject at `path` with the given recipes.
pub fn spec(name: &str, url: &Path, path: &str, recipes: &[(&str, &str)]) -> ProjectSpec {
    serde_json::from_value(serde_json::json!({
        "name": name,
        "git_url": url.display().to_string(),
        "subprojects": [{
            "path": path,
            "language": "shell",
            "recipes": recipes.iter().map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<std::collections::BTreeMap<_, _>>(),
        }],
    }))
    .unwrap()
}

pub fn req(recipe: &str) -> JobRequest {
    JobRequest { recipe: recipe.into(), ..Default::default() }
}

/// Enqueues and waits up to two minutes for the end state.
pub async fn run(t: &CraftingTable, project: &str, r: JobRequest) -> Job {
    let job = t.enqueue(&admin(), project, r).await.expect("enqueue");
    let done = t.wait_job(&admin(), &job.id, Duration::from_secs(120)).await.expect("wait");
    assert!(done.status.is_terminal(), "job did not finish: {done:?}");
    done
}

/// The full log of a job.
pub async fn log(t: &CraftingTable, id: &str) -> String {
    let p = t.job_log_path(&admin(), id).await.unwrap();
    String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned()
}

/// Pids of live processes whose environment holds `CRAFTING_JOB_ID=<id>`.
pub fn processes_of(job_id: &str) -> Vec<i32> {
    crafting_core::process::recipe_processes(None, job_id)
}

/// Resident set size of this process in KiB.
pub fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// A `sleep` duration no other test process uses, so its processes can be
/// found on the host by command line whatever pid namespace they run in:
/// `<base>.<this test process's pid>`.
pub fn sleep_tag(base: u32) -> String {
    format!("{base}.{}", std::process::id())
}

/// Live (non-zombie) processes, seen from the host, with `arg` among their arguments.
pub fn pids_with_arg(arg: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        if cmdline.split(|b| *b == 0).any(|a| a == arg.as_bytes()) && crate::jobs::alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// Waits up to `patience` until every tag has a live process.
pub async fn wait_for_args(tags: &[String], patience: Duration) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < patience {
        if tags.iter().all(|t| !pids_with_arg(t).is_empty()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
