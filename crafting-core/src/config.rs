//! The engine's typed configuration, with defaults that work from a clean
//! clone and a reader for the `CRAFTING_*` environment variables.

use std::path::PathBuf;
use std::time::Duration;

use crate::digest::DigestConfig;
use crate::error::{Error, Result};
use crate::isolation::IsolationSetting;
use crate::patcher::PatcherConfig;

/// Everything the engine needs to start. Build it with [`Config::new`] or
/// [`Config::from_env`] and adjust fields as needed.
#[derive(Debug, Clone)]
pub struct Config {
    /// Ledger, admin bearer file and job logs (`CRAFTING_DATA_DIR`, `./data`).
    pub data_dir: PathBuf,
    /// Bare clones and worktrees (`CRAFTING_WORKSPACE_DIR`, `./workspace`).
    pub workspace_dir: PathBuf,
    /// Tool caches handed to recipes (`CRAFTING_CACHES_DIR`, `./caches`).
    pub caches_dir: PathBuf,
    /// Folders under which local repositories may be registered (`CRAFTING_LOCAL_GIT_ROOTS`,
    /// separated by `:` or `,`; empty by default, which refuses every local URL).
    pub local_git_roots: Vec<PathBuf>,
    /// Concurrent jobs (`CRAFTING_RUNNER_WORKERS`, the number of cores).
    pub runner_workers: usize,
    /// Recipe timeout when the subproject sets none (`CRAFTING_DEFAULT_TIMEOUT_SECS`, 1800).
    pub default_timeout: Duration,
    /// Log cap per job in bytes (`CRAFTING_LOG_MAX_BYTES`, 256 MiB).
    pub log_max_bytes: u64,
    /// Time between SIGTERM and SIGKILL when a job is stopped (`CRAFTING_KILL_GRACE_SECS`, 10).
    pub kill_grace: Duration,
    /// How often the workspace is garbage-collected (one hour).
    pub gc_interval: Duration,
    /// Worktrees older than this are pruned by gc (24 hours).
    pub worktree_max_age: Duration,
    /// Bare clones idle longer than this are `git gc`'d (7 days).
    pub clone_idle_gc: Duration,
    /// The daily digest: schedule, SMTP relay, link base (`CRAFTING_DIGEST_*`,
    /// `CRAFTING_SMTP_*`, `CRAFTING_PUBLIC_URL`); see [`crate::digest`].
    pub digest: DigestConfig,
    /// How recipes are isolated (`CRAFTING_ISOLATION`: `auto`, `bwrap`, `user`
    /// or `none`; `auto` by default). See [`crate::isolation`].
    pub isolation: IsolationSetting,
    /// The user recipes run as (`CRAFTING_BUILD_USER`). In `user` mode it
    /// defaults to `crafting-build`; in `bwrap` mode recipes keep the
    /// service's uid unless this is set.
    pub build_user: Option<String>,
    /// Where bubblewrap is (`CRAFTING_BWRAP`): the binary, or a folder holding
    /// `bwrap`. Looked up on `PATH` when unset.
    pub bwrap_path: Option<PathBuf>,
    /// First of the group ids `user` isolation gives projects
    /// (`CRAFTING_PROJECT_GID_BASE`, 200000): the recipes of the project whose
    /// ledger id is `n` run with group id `base + n`, and only that group may
    /// enter the project's workspace and cache folders. The range
    /// `base + 1 ..= base + 1000000` must be free on the host. See
    /// [`crate::isolation::project_gid`].
    pub project_gid_base: u32,
    /// Most processes (tasks) one job may have at once (`CRAFTING_MAX_PROCESSES`, 4096),
    /// enforced by a pids cgroup per job where one can be created, and by
    /// `RLIMIT_NPROC` when recipes run as a non-root build user.
    pub max_processes: u64,
    /// Most bytes a job's worktree and job folder may use on disk
    /// (`CRAFTING_JOB_DISK_MAX_BYTES`, 20 GiB); the job is stopped past it.
    pub job_disk_max_bytes: u64,
    /// How often a running job's disk use is measured (2 s).
    pub disk_check_interval: Duration,
    /// Whether recipes reach the network unless their subproject says
    /// otherwise (`CRAFTING_RECIPE_NETWORK`, `on` or `off`; `on` by default).
    /// Only `bwrap` mode can take the network away.
    pub recipe_network: bool,
    /// The patch loop: agent, forge, branch prefix and limits
    /// (`CRAFTING_AGENT_*`, `CRAFTING_GITEA_*`, `CRAFTING_GITHUB_*`,
    /// `CRAFTING_PATCHER_*`); see [`crate::patcher`].
    pub patcher: PatcherConfig,
}

impl Config {
    /// Defaults, with the three folders under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Config {
            data_dir: root.join("data"),
            workspace_dir: root.join("workspace"),
            caches_dir: root.join("caches"),
            local_git_roots: Vec::new(),
            runner_workers: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            default_timeout: Duration::from_secs(1800),
            log_max_bytes: 256 * 1024 * 1024,
            kill_grace: Duration::from_secs(10),
            gc_interval: Duration::from_secs(3600),
            worktree_max_age: Duration::from_secs(24 * 3600),
            clone_idle_gc: Duration::from_secs(7 * 24 * 3600),
            digest: DigestConfig::default(),
            isolation: IsolationSetting::Auto,
            build_user: None,
            bwrap_path: None,
            project_gid_base: crate::isolation::DEFAULT_PROJECT_GID_BASE,
            max_processes: 4096,
            job_disk_max_bytes: 20 * 1024 * 1024 * 1024,
            disk_check_interval: Duration::from_secs(2),
            recipe_network: true,
            patcher: PatcherConfig::default(),
        }
    }

    /// Defaults relative to the current directory, overridden by `CRAFTING_*`
    /// variables from the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// Like [`Config::from_env`] but reading variables through `get`.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut c = Config::new(".");
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("CRAFTING_DATA_DIR") {
            c.data_dir = v.into();
        }
        if let Some(v) = get("CRAFTING_WORKSPACE_DIR") {
            c.workspace_dir = v.into();
        }
        if let Some(v) = get("CRAFTING_CACHES_DIR") {
            c.caches_dir = v.into();
        }
        if let Some(v) = get("CRAFTING_LOCAL_GIT_ROOTS") {
            c.local_git_roots = split_paths(&v);
        }
        if let Some(v) = get("CRAFTING_RUNNER_WORKERS") {
            c.runner_workers = number("CRAFTING_RUNNER_WORKERS", &v)?.max(1) as usize;
        }
        if let Some(v) = get("CRAFTING_DEFAULT_TIMEOUT_SECS") {
            c.default_timeout = Duration::from_secs(number("CRAFTING_DEFAULT_TIMEOUT_SECS", &v)?);
        }
        if let Some(v) = get("CRAFTING_LOG_MAX_BYTES") {
            c.log_max_bytes = number("CRAFTING_LOG_MAX_BYTES", &v)?;
        }
        if let Some(v) = get("CRAFTING_KILL_GRACE_SECS") {
            c.kill_grace = Duration::from_secs(number("CRAFTING_KILL_GRACE_SECS", &v)?);
        }
        if let Some(v) = get("CRAFTING_ISOLATION") {
            c.isolation = IsolationSetting::parse(&v)?;
        }
        if let Some(v) = get("CRAFTING_BUILD_USER") {
            c.build_user = Some(v.trim().to_owned());
        }
        if let Some(v) = get("CRAFTING_BWRAP") {
            c.bwrap_path = Some(v.trim().into());
        }
        if let Some(v) = get("CRAFTING_PROJECT_GID_BASE") {
            let n = number("CRAFTING_PROJECT_GID_BASE", &v)?;
            let base = u32::try_from(n).map_err(|_| {
                Error::invalid(
                    "invalid_config",
                    format!("CRAFTING_PROJECT_GID_BASE={v:?} is larger than a group id can be"),
                )
            })?;
            crate::isolation::check_gid_base(base)?;
            c.project_gid_base = base;
        }
        if let Some(v) = get("CRAFTING_MAX_PROCESSES") {
            c.max_processes = number("CRAFTING_MAX_PROCESSES", &v)?.max(1);
        }
        if let Some(v) = get("CRAFTING_JOB_DISK_MAX_BYTES") {
            c.job_disk_max_bytes = number("CRAFTING_JOB_DISK_MAX_BYTES", &v)?;
        }
        if let Some(v) = get("CRAFTING_RECIPE_NETWORK") {
            c.recipe_network = match v.trim().to_ascii_lowercase().as_str() {
                "on" | "true" | "1" | "yes" => true,
                "off" | "false" | "0" | "no" => false,
                _ => {
                    return Err(Error::invalid(
                        "invalid_config",
                        format!("CRAFTING_RECIPE_NETWORK={v:?} is neither on nor off"),
                    ));
                }
            };
        }
        c.patcher = PatcherConfig::from_vars(get)?;
        c.digest = DigestConfig::from_vars(get)?;
        Ok(c)
    }

    /// The SQLite ledger file.
    pub fn ledger_path(&self) -> PathBuf {
        self.data_dir.join("ledger.sqlite3")
    }

    /// The file the first admin bearer is written to.
    pub fn admin_bearer_path(&self) -> PathBuf {
        self.data_dir.join("admin-bearer.txt")
    }

    /// The folder holding job logs.
    pub fn logs_dir(&self) -> PathBuf {
        self.data_dir.join("logs")
    }
}

/// Splits a `:` or `,` separated list of paths, dropping empty entries.
pub fn split_paths(v: &str) -> Vec<PathBuf> {
    v.split([':', ',']).map(str::trim).filter(|s| !s.is_empty()).map(PathBuf::from).collect()
}

fn number(var: &str, v: &str) -> Result<u64> {
    v.trim()
        .parse()
        .map_err(|_| Error::invalid("invalid_config", format!("{var}={v:?} is not a whole number")))
}
