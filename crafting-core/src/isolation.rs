//! Recipe isolation: which mode the host can provide, the sandbox a recipe
//! runs in, the per-job process limit and the per-job disk measure.
//!
//! Three modes, picked once at start-up by [`detect`]:
//!
//! - **`bwrap`**: every recipe runs under bubblewrap in its own mount, pid,
//!   ipc and uts namespaces and a new session, with every capability
//!   dropped. The system is mounted read-only; the data folder, the whole
//!   workspace and the caches folder are hidden under empty read-only
//!   tmpfs; then the job's worktree (read-write), its project's bare clone
//!   (read-only) and its project's cache folder (read-write) are mounted
//!   back, with a per-job home and `/tmp` on disk. The recipe keeps the
//!   service's uid (so toolchains installed in the service's home keep
//!   working; they are mounted back read-only into the per-job home) unless
//!   a build user is configured, in which case bubblewrap itself is started
//!   as that user.
//! - **`user`**: every recipe runs as the build user with its project's own
//!   group id ([`project_gid`]: `CRAFTING_PROJECT_GID_BASE` + the project's
//!   ledger id) and no supplementary groups, with a per-job home and
//!   `TMPDIR`. The project's workspace folder (`root:<project gid>`, 0750)
//!   and cache folder (`root:<project gid>`, 0770) let in only that group,
//!   so a recipe of another project cannot even walk into them; inside, the
//!   worktree, the job folder and the caches belong to the build user, and
//!   the bare clone stays the service's, readable through the group and
//!   never writable by the recipe.
//! - **`none`**: recipes run as the service's own user; a warning says so.
//!
//! Whatever the mode, a job gets a pids cgroup of its own where one can be
//! created ([`JobCgroup`]), its disk use is measured while it runs
//! ([`disk_usage`]), and the recipe inherits no file descriptor but 0-2.

use std::ffi::CString;
use std::fmt;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::{Error, Result};

/// The build user `user` mode runs recipes as when `CRAFTING_BUILD_USER` is unset.
pub const DEFAULT_BUILD_USER: &str = "crafting-build";

/// The default of `CRAFTING_PROJECT_GID_BASE`.
pub const DEFAULT_PROJECT_GID_BASE: u32 = 200_000;

/// How many project ids the per-project group range covers: the project with
/// ledger id `n` (1 <= n <= this) gets group id `base + n`.
pub const PROJECT_GID_SPAN: u32 = 1_000_000;

/// Refuses a `CRAFTING_PROJECT_GID_BASE` that cannot work: 0 (projects
/// would get the host's own low group ids, `daemon`, `bin`, ...), or one whose range
/// `base + 1 ..= base + PROJECT_GID_SPAN` would not fit below `u32::MAX`
/// (which is `(gid_t) -1`, "no change", to the kernel).
pub fn check_gid_base(base: u32) -> Result<()> {
    let bad = |why: String| Error::invalid("invalid_config", why);
    if base == 0 {
        return Err(bad("CRAFTING_PROJECT_GID_BASE=0 is not allowed: each project's recipes \
             run with group id base + project id, so the base must leave a range of free group \
             ids (the default is 200000)"
            .to_owned()));
    }
    match base.checked_add(PROJECT_GID_SPAN) {
        Some(top) if top < u32::MAX => Ok(()),
        _ => Err(bad(format!(
            "CRAFTING_PROJECT_GID_BASE={base} is too large: the per-project group ids \
             {base}+1 ..= {base}+{PROJECT_GID_SPAN} must stay below {} (the default is 200000)",
            u32::MAX
        ))),
    }
}

/// The group id the recipes of the project with ledger id `project_id` run
/// with in `user` isolation: `base + project_id`.
pub fn project_gid(base: u32, project_id: i64) -> Result<u32> {
    check_gid_base(base)?;
    match u32::try_from(project_id) {
        Ok(id) if (1..=PROJECT_GID_SPAN).contains(&id) => Ok(base + id),
        _ => Err(Error::invalid(
            "project_gid_range",
            format!(
                "project id {project_id} is outside the per-project group range \
                 (1 to {PROJECT_GID_SPAN}); user isolation cannot give it a group of its own"
            ),
        )),
    }
}

/// Group ids of `/etc/group` inside the per-project range of `base`: their
/// members would share a project's files.
fn groups_in_project_range(base: u32) -> Vec<String> {
    let text = fs::read_to_string("/etc/group").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let gid: u32 = f.nth(1)?.trim().parse().ok()?;
            (gid > base && gid - base <= PROJECT_GID_SPAN).then(|| format!("{name} ({gid})"))
        })
        .collect()
}

/// The service's own user id (the owner of the folders it protects).
pub fn service_uid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// Makes the folder `dir` the service's and the group `gid`'s, with `mode`:
/// only that group (and the service) may enter it. A symlink is refused.
pub fn give_to_group(dir: &Path, gid: u32, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(std::io::Error::other(format!("{} is not a folder", dir.display())));
    }
    std::os::unix::fs::lchown(dir, Some(service_uid()), Some(gid))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
}

/// A project's cache folder in `user` isolation: the folder itself the
/// service's and the project group's (0770, so only that group enters and
/// writes it, and no recipe can change its mode), what is inside the build
/// user's and the project group's. The contents are re-owned only when the
/// folder is not yet the project group's (first use, or an older layout).
pub fn lock_project_caches(dir: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(std::io::Error::other(format!("{} is not a folder", dir.display())));
    }
    if meta.uid() != service_uid() || meta.gid() != gid {
        for e in fs::read_dir(dir)? {
            chown_tree(&e?.path(), uid, gid)?;
        }
    }
    give_to_group(dir, gid, 0o770)
}

/// What the configuration asks for (`CRAFTING_ISOLATION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationSetting {
    /// The strongest mode the host provides.
    #[default]
    Auto,
    /// bubblewrap, or refuse to start.
    Bwrap,
    /// A separate build user, or refuse to start.
    User,
    /// No isolation.
    None,
}

impl IsolationSetting {
    /// Parses `auto`, `bwrap`, `user` or `none`.
    pub fn parse(v: &str) -> Result<Self> {
        match v.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(IsolationSetting::Auto),
            "bwrap" | "bubblewrap" => Ok(IsolationSetting::Bwrap),
            "user" => Ok(IsolationSetting::User),
            "none" | "off" => Ok(IsolationSetting::None),
            _ => Err(Error::invalid(
                "invalid_config",
                format!("CRAFTING_ISOLATION={v:?} is not one of auto, bwrap, user, none"),
            )),
        }
    }
}

/// The mode recipes run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IsolationMode {
    /// bubblewrap namespaces.
    Bwrap,
    /// A separate build user.
    User,
    /// None: the service's own user, no sandbox.
    None,
}

impl IsolationMode {
    /// `bwrap`, `user` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            IsolationMode::Bwrap => "bwrap",
            IsolationMode::User => "user",
            IsolationMode::None => "none",
        }
    }
}

impl fmt::Display for IsolationMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user recipes may run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildUser {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// The mode chosen at start-up, with what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isolation {
    /// The mode.
    pub mode: IsolationMode,
    /// The bubblewrap binary (`bwrap` mode).
    pub bwrap: Option<PathBuf>,
    /// The user recipes run as, when it is not the service's own.
    pub user: Option<BuildUser>,
}

impl Isolation {
    /// No isolation.
    pub fn none() -> Self {
        Isolation { mode: IsolationMode::None, bwrap: None, user: None }
    }

    /// A one-line description for logs and `doctor`.
    pub fn describe(&self) -> String {
        match (&self.mode, &self.user) {
            (IsolationMode::Bwrap, Some(u)) => format!("bwrap (as build user {})", u.name),
            (IsolationMode::Bwrap, None) => "bwrap (as the service's own user)".to_owned(),
            (IsolationMode::User, Some(u)) => format!("user (build user {})", u.name),
            (m, _) => m.as_str().to_owned(),
        }
    }
}

/// Looks a user up in the password database.
pub fn lookup_user(name: &str) -> Option<BuildUser> {
    let cname = CString::new(name).ok()?;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; buf outlives its use.
    let rc = unsafe {
        libc::getpwnam_r(cname.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut out)
    };
    if rc != 0 || out.is_null() {
        return None;
    }
    Some(BuildUser { name: name.to_owned(), uid: pwd.pw_uid, gid: pwd.pw_gid })
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Where bubblewrap would be taken from: `Config::bwrap_path` (a binary, or
/// a folder holding `bwrap`), else the first `bwrap` on `PATH`.
pub fn find_bwrap(cfg: &Config) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| {
        fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
    };
    if let Some(p) = &cfg.bwrap_path {
        let p = if p.is_dir() { p.join("bwrap") } else { p.clone() };
        return runnable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("bwrap")).find(|p| runnable(p))
}

/// Runs a trivial sandbox with the same namespaces a recipe gets.
pub fn probe_bwrap(bwrap: &Path, user: Option<&BuildUser>) -> std::result::Result<(), String> {
    let mut cmd = Command::new(bwrap);
    cmd.args(["--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc"]).args([
        "--unshare-uts",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
    ]);
    if user.is_none() && is_root() {
        cmd.args(["--cap-drop", "ALL"]);
    }
    cmd.args(["--", "/bin/sh", "-c", "exit 0"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(u) = user {
        drop_privileges_on_exec(&mut cmd, u.uid, u.gid);
    }
    let mut child = cmd.spawn().map_err(|e| format!("could not run {}: {e}", bwrap.display()))?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                return Err(format!("{status}: {}", err.trim()));
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("the probe sandbox did not finish within 15 s".to_owned());
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn drop_privileges_on_exec(cmd: &mut Command, uid: u32, gid: u32) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe syscalls run between fork and exec.
    unsafe {
        cmd.pre_exec(move || drop_privileges(uid, gid));
    }
}

/// Marks every descriptor above 2 close-on-exec, so the recipe gets none
/// the service inherited without that flag from whoever started it (the
/// service's own descriptors already have it). Marking rather than closing
/// keeps the standard library's exec-error pipe working until exec.
fn close_inherited_fds() {
    // SAFETY: plain syscalls on descriptor numbers; unused ones yield EBADF.
    unsafe {
        const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
        if libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        ) == 0
        {
            return;
        }
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur.min(1 << 20) as libc::c_int
        } else {
            4096
        };
        for fd in 3..max {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
}

/// setgroups([]), setgid, setuid; for use between fork and exec.
fn drop_privileges(uid: u32, gid: u32) -> std::io::Result<()> {
    // SAFETY: plain syscalls.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setgid(gid) != 0
            || libc::setuid(uid) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Picks the isolation mode for `cfg`, or says what the host lacks for a
/// forced mode. `auto`: bwrap when bubblewrap is found and a probe sandbox
/// runs; else `user` when the service runs as root and the build user
/// exists; else `none`.
pub fn detect(cfg: &Config) -> Result<Isolation> {
    let unavailable =
        |message: String| Error::Unavailable { code: "isolation_unavailable", message };
    let explicit_user = match &cfg.build_user {
        Some(name) => match lookup_user(name) {
            Some(u) => Some(u),
            None => {
                return Err(unavailable(format!(
                    "CRAFTING_BUILD_USER={name:?} does not exist: create it \
                     (useradd --system --no-create-home {name}) or unset CRAFTING_BUILD_USER"
                )));
            }
        },
        None => None,
    };
    if explicit_user.is_some() && !is_root() {
        return Err(unavailable(
            "CRAFTING_BUILD_USER is set but the service does not run as root, so it cannot \
             switch to that user: run the service as root or unset CRAFTING_BUILD_USER"
                .to_owned(),
        ));
    }
    let try_bwrap = || -> std::result::Result<Isolation, String> {
        let Some(bwrap) = find_bwrap(cfg) else {
            let place = match &cfg.bwrap_path {
                Some(p) => format!("at {}", p.display()),
                None => "on PATH".to_owned(),
            };
            return Err(format!(
                "bubblewrap (bwrap) was not found {place}: install the bubblewrap package \
                 (apt-get install bubblewrap) or set CRAFTING_BWRAP to its location"
            ));
        };
        probe_bwrap(&bwrap, explicit_user.as_ref()).map_err(|e| {
            format!(
                "bubblewrap at {} could not start a sandbox ({e}): run the service as root or \
                 allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)",
                bwrap.display()
            )
        })?;
        Ok(Isolation {
            mode: IsolationMode::Bwrap,
            bwrap: Some(bwrap),
            user: explicit_user.clone(),
        })
    };
    let try_user = || -> std::result::Result<Isolation, String> {
        if !is_root() {
            return Err("user isolation needs the service to run as root, to switch to the \
                        build user"
                .to_owned());
        }
        check_gid_base(cfg.project_gid_base).map_err(|e| e.to_string())?;
        let taken = groups_in_project_range(cfg.project_gid_base);
        if !taken.is_empty() {
            tracing::warn!(
                groups = %taken.join(", "),
                "groups of the host lie in the per-project range of CRAFTING_PROJECT_GID_BASE={}: \
                 their members share those projects' files; choose another base",
                cfg.project_gid_base
            );
        }
        let name = cfg.build_user.clone().unwrap_or_else(|| DEFAULT_BUILD_USER.to_owned());
        match explicit_user.clone().or_else(|| lookup_user(&name)) {
            Some(u) if u.uid == 0 => Err(format!("the build user {name:?} is root")),
            Some(u) => Ok(Isolation { mode: IsolationMode::User, bwrap: None, user: Some(u) }),
            None => Err(format!(
                "the build user {name:?} does not exist: create it \
                 (useradd --system --no-create-home {name}) or set CRAFTING_BUILD_USER"
            )),
        }
    };
    match cfg.isolation {
        IsolationSetting::None => Ok(Isolation::none()),
        IsolationSetting::Bwrap => {
            try_bwrap().map_err(|e| unavailable(format!("CRAFTING_ISOLATION=bwrap: {e}")))
        }
        IsolationSetting::User => {
            try_user().map_err(|e| unavailable(format!("CRAFTING_ISOLATION=user: {e}")))
        }
        IsolationSetting::Auto => match try_bwrap() {
            Ok(i) => Ok(i),
            Err(why_not_bwrap) => match try_user() {
                Ok(i) => {
                    tracing::info!(reason = %why_not_bwrap, "bwrap isolation not available");
                    Ok(i)
                }
                Err(why_not_user) => {
                    tracing::info!(bwrap = %why_not_bwrap, user = %why_not_user,
                        "no recipe isolation available");
                    Ok(Isolation::none())
                }
            },
        },
    }
}

// ----- the sandbox of one job -------------------------------------------------------------

/// Files never shown to a recipe running as root inside bubblewrap; each is
/// covered with an empty file when it exists.
const MASKED_FILES: &[&str] = &["/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-"];

/// Files under the re-exposed toolchain folders that may hold credentials.
const MASKED_TOOLCHAIN_FILES: &[&str] =
    &["credentials", "credentials.toml", ".credentials", ".netrc", ".git-credentials"];

/// How one recipe is confined. Built by the runner, applied by
/// [`crate::process::Recipe::spawn`].
#[derive(Debug, Clone, Default)]
pub struct Jail {
    /// The bubblewrap binary, when the recipe runs under it.
    pub bwrap: Option<PathBuf>,
    /// The user the recipe runs as, when not the service's.
    pub user: Option<(u32, u32)>,
    /// Folders hidden under an empty read-only tmpfs (data, workspace, caches).
    pub hide: Vec<PathBuf>,
    /// Mounted back read-only (the project's bare clone).
    pub read_only: Vec<PathBuf>,
    /// Mounted back read-write (the worktree, the project's caches).
    pub read_write: Vec<PathBuf>,
    /// Mounted on `/tmp` (the job's tmp folder).
    pub tmp: Option<PathBuf>,
    /// `(per-job home, home path seen by the recipe)`: the service's home
    /// is replaced by the per-job home.
    pub home: Option<(PathBuf, PathBuf)>,
    /// Toolchain folders mounted back read-only inside the home.
    pub toolchains: Vec<PathBuf>,
    /// False: no network namespace of the host (`--unshare-net`).
    pub network: bool,
    /// The `cgroup.procs` file the recipe moves itself into before exec.
    pub cgroup_procs: Option<PathBuf>,
    /// `RLIMIT_NPROC` for the recipe (non-root build users only).
    pub nproc: Option<u64>,
}

impl Jail {
    /// The bubblewrap arguments before the command, for a recipe whose
    /// working directory is `cwd`.
    pub fn bwrap_args(&self, cwd: &Path) -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = Vec::new();
        let mut push =
            |parts: &[&std::ffi::OsStr]| a.extend(parts.iter().map(|p| p.to_os_string()));
        let os = |s: &'static str| std::ffi::OsStr::new(s);
        push(&[os("--die-with-parent"), os("--new-session")]);
        push(&[os("--unshare-pid"), os("--unshare-ipc"), os("--unshare-uts")]);
        if !self.network {
            push(&[os("--unshare-net")]);
        }
        if self.user.is_none() && is_root() {
            push(&[os("--cap-drop"), os("ALL")]);
        }
        push(&[os("--ro-bind"), os("/"), os("/")]);
        push(&[os("--dev"), os("/dev"), os("--proc"), os("/proc")]);
        for f in MASKED_FILES {
            if Path::new(f).exists() {
                push(&[os("--ro-bind"), os("/dev/null"), os(f)]);
            }
        }
        // bubblewrap mounts in the order given, each destination in the
        // tree built so far: the job's /tmp and home go first, so that
        // folders hidden below them are hidden inside them; the hidden
        // folders stay writable until the job's own folders are mounted
        // back into them, and become read-only last.
        if let Some(tmp) = &self.tmp {
            push(&[os("--bind"), tmp.as_os_str(), os("/tmp")]);
        }
        if let Some((job_home, seen)) = &self.home {
            push(&[os("--bind"), job_home.as_os_str(), seen.as_os_str()]);
            for t in &self.toolchains {
                push(&[os("--ro-bind"), t.as_os_str(), t.as_os_str()]);
                for f in MASKED_TOOLCHAIN_FILES {
                    let p = t.join(f);
                    if p.is_file() {
                        push(&[os("--ro-bind"), os("/dev/null"), p.as_os_str()]);
                    }
                }
            }
        }
        let hidden: Vec<&PathBuf> = self.hide.iter().filter(|h| h.is_dir()).collect();
        for h in &hidden {
            push(&[os("--tmpfs"), h.as_os_str()]);
        }
        for r in &self.read_only {
            push(&[os("--ro-bind"), r.as_os_str(), r.as_os_str()]);
        }
        for w in &self.read_write {
            push(&[os("--bind"), w.as_os_str(), w.as_os_str()]);
        }
        for h in &hidden {
            push(&[os("--remount-ro"), h.as_os_str()]);
        }
        push(&[os("--chdir"), cwd.as_os_str(), os("--")]);
        a
    }

    /// Prepares the `Command` (already set up to run the recipe through
    /// `program`): joins the cgroup, sets the process limit and drops to the
    /// build user between fork and exec.
    pub fn apply(&self, cmd: &mut Command) -> std::io::Result<()> {
        use std::os::unix::process::CommandExt;
        let procs = match &self.cgroup_procs {
            Some(p) => Some(CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other)?),
            None => None,
        };
        let nproc = self.nproc;
        let user = self.user;
        // SAFETY: only async-signal-safe syscalls run between fork and exec;
        // the path was allocated before the fork.
        unsafe {
            cmd.pre_exec(move || {
                close_inherited_fds();
                if let Some(p) = &procs {
                    let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // "0" moves the writing process.
                    let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                    let err = std::io::Error::last_os_error();
                    libc::close(fd);
                    if n != 1 {
                        return Err(err);
                    }
                }
                if let Some(n) = nproc {
                    let lim =
                        libc::rlimit { rlim_cur: n as libc::rlim_t, rlim_max: n as libc::rlim_t };
                    if libc::setrlimit(libc::RLIMIT_NPROC, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if let Some((uid, gid)) = user {
                    drop_privileges(uid, gid)?;
                }
                Ok(())
            });
        }
        Ok(())
    }
}

/// The top folders of the service's home that hold the toolchains a recipe
/// needs: for each `PATH` entry and toolchain variable pointing into
/// `home`, its first component under `home` (e.g. `~/.cargo`, `~/.pyenv`),
/// plus `~/.rustup` when `~/.cargo` is one (rustup's proxies need it).
pub fn toolchain_dirs(home: &Path, locations: &[String]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut add = |p: PathBuf| {
        if p.is_dir() && !out.contains(&p) {
            out.push(p);
        }
    };
    for loc in locations {
        for part in std::env::split_paths(loc) {
            if let Ok(rest) = part.strip_prefix(home)
                && let Some(first) = rest.components().next()
            {
                let top = home.join(first);
                let rustup = top.ends_with(".cargo");
                add(top);
                if rustup {
                    add(home.join(".rustup"));
                }
            }
        }
    }
    out
}

/// Whether `uid`/`gid` may walk down to `path` and read it, judged by the
/// mode bits of `path` and every folder above it.
pub fn reachable_by(path: &Path, uid: u32, gid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let mut p = Some(path);
    let mut first = true;
    while let Some(dir) = p {
        let Ok(m) = fs::metadata(dir) else { return false };
        let need = if first { 0o5 } else { 0o1 };
        let bits = if m.uid() == uid {
            (m.mode() >> 6) & 0o7
        } else if m.gid() == gid {
            (m.mode() >> 3) & 0o7
        } else {
            m.mode() & 0o7
        };
        if bits & need != need {
            return false;
        }
        first = false;
        p = dir.parent();
    }
    true
}

// ----- process-count limit ----------------------------------------------------------------

/// A pids cgroup holding one job's processes.
#[derive(Debug, Clone)]
pub struct JobCgroup {
    dir: PathBuf,
    sealed: bool,
}

/// Where per-job cgroups are created: cgroup v1's pids hierarchy, or the
/// cgroup v2 root when it offers the pids controller.
fn cgroup_parent() -> Option<(PathBuf, bool)> {
    let v1 = Path::new("/sys/fs/cgroup/pids");
    if v1.join("cgroup.procs").exists() {
        return Some((v1.join("crafting-table"), false));
    }
    let v2 = Path::new("/sys/fs/cgroup");
    let controllers = fs::read_to_string(v2.join("cgroup.controllers")).ok()?;
    controllers.split_whitespace().any(|c| c == "pids").then(|| (v2.join("crafting-table"), true))
}

impl JobCgroup {
    /// Creates `crafting-table/<job_id>` with `pids.max = max`; `None` when
    /// the host offers no writable pids cgroup.
    pub fn create(job_id: &str, max: u64) -> Option<JobCgroup> {
        let (parent, v2) = cgroup_parent()?;
        if v2 {
            // Delegate the pids controller down to the job cgroups.
            let root = parent.parent()?;
            let _ = fs::write(root.join("cgroup.subtree_control"), "+pids");
            fs::create_dir_all(&parent).ok()?;
            let _ = fs::write(parent.join("cgroup.subtree_control"), "+pids");
        } else {
            fs::create_dir_all(&parent).ok()?;
        }
        let dir = parent.join(job_id);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                tracing::debug!(error = %e, "no pids cgroup for the job");
                return None;
            }
        }
        if fs::write(dir.join("pids.max"), max.to_string()).is_err() {
            let _ = fs::remove_dir(&dir);
            return None;
        }
        Some(JobCgroup { dir, sealed: false })
    }

    /// Declares that no process of the recipe can leave this cgroup, so that
    /// its member list alone names every process of the job (see
    /// [`JobCgroup::is_sealed`]). True when the recipe runs under bubblewrap
    /// (the cgroup file system is mounted read-only there and every
    /// capability is dropped) or as a build user other than root (the
    /// `cgroup.procs` files belong to root); not in `none` isolation, where
    /// the recipe could write its pid into another cgroup's `cgroup.procs`.
    pub fn sealed(mut self, sealed: bool) -> JobCgroup {
        self.sealed = sealed;
        self
    }

    /// Whether the recipe cannot leave the cgroup: then ending a job reads
    /// the cgroup's member list instead of walking all of `/proc`.
    pub fn is_sealed(&self) -> bool {
        self.sealed
    }

    /// The cgroup a previous run created for `job_id`, if it is still there.
    pub fn existing(job_id: &str) -> Option<JobCgroup> {
        let (parent, _) = cgroup_parent()?;
        let dir = parent.join(job_id);
        dir.join("cgroup.procs").exists().then_some(JobCgroup { dir, sealed: false })
    }

    /// Whether this host can give jobs a pids cgroup (tried with a probe group).
    pub fn available() -> bool {
        let probe = format!("probe-{}", std::process::id());
        match JobCgroup::create(&probe, 1) {
            Some(c) => {
                c.remove();
                true
            }
            None => false,
        }
    }

    /// The folder of the cgroup.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file a process writes to join.
    pub fn procs_file(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// The processes in the cgroup now.
    pub fn pids(&self) -> Vec<i32> {
        fs::read_to_string(self.procs_file())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Removes the (empty) cgroup; retries for up to a second while the last
    /// processes are reaped, soon at first, then less often.
    pub fn remove(&self) {
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut pause = Duration::from_millis(1);
        while Instant::now() < deadline {
            if fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
        tracing::warn!(cgroup = %self.dir.display(), "job cgroup could not be removed");
    }
}

// ----- disk use ---------------------------------------------------------------------------

/// Bytes of disk the files under `roots` occupy (allocated blocks; symlinks
/// are not followed, other file systems mounted inside are not entered).
pub fn disk_usage(roots: &[&Path]) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0u64;
    let mut stack: Vec<PathBuf> = Vec::new();
    for r in roots {
        if let Ok(m) = fs::symlink_metadata(r) {
            total += m.blocks() * 512;
            if m.is_dir() {
                stack.push(r.to_path_buf());
            }
            let dev = m.dev();
            while let Some(dir) = stack.pop() {
                let Ok(entries) = fs::read_dir(&dir) else { continue };
                for e in entries.flatten() {
                    let Ok(m) = e.metadata() else { continue };
                    if m.dev() != dev {
                        continue;
                    }
                    total += m.blocks() * 512;
                    if m.is_dir() {
                        stack.push(e.path());
                    }
                }
            }
        }
    }
    total
}

/// Changes the owner of `path` and everything under it (symlinks themselves,
/// never their targets).
pub fn chown_tree(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        for e in fs::read_dir(path)? {
            chown_tree(&e?.path(), uid, gid)?;
        }
    }
    Ok(())
}
