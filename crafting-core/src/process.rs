//! Recipe processes: spawning in a new process group with a scrubbed
//! environment, streaming output to the log file, and making sure that no
//! process of a recipe outlives its job.
//!
//! A recipe's processes are found by its pids cgroup when the recipe cannot
//! leave it ([`JobCgroup::is_sealed`]): every process it starts, through
//! `setsid` and double forks, stays a member, so the member list is the whole
//! answer. Otherwise they are found two more ways, because each alone can be
//! escaped: by process group (everything the shell starts, unless it calls
//! `setsid`), and by the `CRAFTING_JOB_ID=<id>` variable every recipe process
//! inherits (which survives `setsid` and double forks). Both come from
//! `/proc`, so this module is Linux-only.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::isolation::JobCgroup;

/// The line appended when a log reaches its cap.
pub fn truncation_marker(cap: u64) -> String {
    format!(
        "\n[crafting-table] log truncated at {cap} bytes (CRAFTING_LOG_MAX_BYTES); \
         the recipe kept running, further output was discarded\n"
    )
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Passed to `/bin/sh -c`.
    pub command: String,
    /// Working directory.
    pub cwd: PathBuf,
    /// The complete environment; nothing else is inherited.
    pub env: Vec<(String, String)>,
    /// Log file, created or appended to.
    pub log_path: PathBuf,
    /// Bytes of recipe output kept at most.
    pub log_cap: u64,
    /// The sandbox, user and limits the recipe runs under.
    pub jail: crate::isolation::Jail,
}

/// A started recipe.
pub struct Recipe {
    child: Child,
    /// The process group id (the shell's pid).
    pub pgid: i32,
    /// The shell's start time in clock ticks since boot, to tell it from a reused pid.
    pub start_ticks: Option<u64>,
    reader: Option<LogReader>,
    stop_reader: Arc<AtomicBool>,
    progress: Arc<LogProgress>,
}

/// The thread copying output into the log, and where it hands over what it saw.
struct LogReader {
    thread: JoinHandle<()>,
    done: mpsc::Receiver<io::Result<Capture>>,
}

/// What the log reader saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Capture {
    /// Bytes in the log file (recipe output kept plus any marker).
    pub bytes: u64,
    /// Whether the cap was hit.
    pub truncated: bool,
}

impl Recipe {
    /// Spawns `/bin/sh -c command` in a new process group (under bubblewrap
    /// when the jail says so), stdout and stderr both on one pipe whose
    /// reader thread copies into the log file. The recipe inherits fds 0-2
    /// only: every other descriptor of the service is close-on-exec.
    pub fn spawn(spec: &Spec) -> io::Result<Recipe> {
        let mut log = fs::OpenOptions::new().create(true).append(true).open(&spec.log_path)?;
        let already = log.metadata()?.len();
        let (pipe_r, pipe_w) = io::pipe()?;
        widen_pipe(pipe_r.as_raw_fd());
        let mut cmd = match &spec.jail.bwrap {
            Some(bwrap) => {
                let mut c = Command::new(bwrap);
                c.args(spec.jail.bwrap_args(&spec.cwd)).arg("/bin/sh");
                c
            }
            None => Command::new("/bin/sh"),
        };
        spec.jail.apply(&mut cmd)?;
        cmd.arg("-c")
            .arg(&spec.command)
            .current_dir(&spec.cwd)
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(pipe_w.try_clone()?)
            .stderr(pipe_w)
            .process_group(0);
        let child = cmd.spawn()?;
        // The command still holds the write ends; drop it so EOF arrives when
        // the recipe's processes are gone.
        drop(cmd);
        let pgid = child.id() as i32;
        let start_ticks = start_ticks(pgid);
        let stop_reader = Arc::new(AtomicBool::new(false));
        let stop = stop_reader.clone();
        let progress = Arc::new(LogProgress::default());
        let wrote = progress.clone();
        let cap = spec.log_cap;
        let (done_tx, done) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new().name(format!("log-{pgid}")).spawn(move || {
            let _ = done_tx.send(copy_log(pipe_r, &mut log, already, cap, &stop, &wrote));
        })?;
        let reader = LogReader { thread, done };
        Ok(Recipe { child, pgid, start_ticks, reader: Some(reader), stop_reader, progress })
    }

    /// How far the log has been written; hand it to a [`FollowLog`] to read
    /// the log while the recipe runs.
    pub fn progress(&self) -> Arc<LogProgress> {
        self.progress.clone()
    }

    /// Blocks until the shell exits.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait()
    }

    /// Returns the shell's status if it has exited.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Waits for the log reader to see the end of output. Gives up after
    /// `patience` (a process that left the group and cleared its environment
    /// may still hold the pipe) and stops the reader.
    pub fn finish_capture(&mut self, patience: Duration) -> io::Result<Capture> {
        let Some(reader) = self.reader.take() else { return Ok(Capture::default()) };
        // Woken the moment the reader is done, rather than by polling.
        let seen = match reader.done.recv_timeout(patience) {
            Ok(seen) => Ok(seen),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.stop_reader.store(true, Ordering::SeqCst);
                reader.done.recv()
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(mpsc::RecvError),
        };
        let joined = reader.thread.join();
        match (seen, joined) {
            (Ok(seen), Ok(())) => seen,
            _ => Err(io::Error::other("log reader panicked")),
        }
    }
}

/// Exit code as recorded: the code, or -1 when killed by a signal.
pub fn exit_code(status: ExitStatus) -> i32 {
    status.code().unwrap_or(-1)
}

fn copy_log(
    mut pipe: io::PipeReader,
    log: &mut File,
    already: u64,
    cap: u64,
    stop: &AtomicBool,
    progress: &LogProgress,
) -> io::Result<Capture> {
    // Plain reads and writes through a 128 KiB buffer. splice(2) from the
    // pipe into the file saves no copy (the kernel copies pipe pages into
    // the page cache either way) and each call costs more: moving 1 GiB of
    // build-log lines took about 1.5 times as long with it.
    let mut buf = vec![0u8; 128 * 1024];
    let mut kept = 0u64;
    let mut truncated = false;
    let mut marker_len = 0u64;
    let fd = pipe.as_raw_fd();
    // Non-blocking, so that the loop can notice `stop` while the pipe is
    // quiet; only this end is affected, the recipe writes as usual.
    set_nonblocking(fd)?;
    loop {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let n = match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Dry: wait for output (a bounded while, to notice `stop`).
                let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
                // SAFETY: pfd is a valid pollfd for the duration of the call.
                if unsafe { libc::poll(&mut pfd, 1, 200) } < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        if truncated {
            continue;
        }
        let room = cap.saturating_sub(kept);
        if (n as u64) <= room {
            log.write_all(&buf[..n])?;
            kept += n as u64;
        } else {
            log.write_all(&buf[..room as usize])?;
            kept += room;
            let marker = truncation_marker(cap);
            log.write_all(marker.as_bytes())?;
            marker_len = marker.len() as u64;
            truncated = true;
        }
        progress.wrote();
    }
    log.flush()?;
    Ok(Capture { bytes: already + kept + marker_len, truncated })
}

/// How far a job's log has been written: a count of writes, and whether the
/// log is complete. The log reader counts its writes; the runner declares
/// the log complete once the engine's closing line is in.
#[derive(Debug, Default)]
pub struct LogProgress {
    state: Mutex<(u64, bool)>,
    changed: Condvar,
}

impl LogProgress {
    /// Something more was written.
    pub fn wrote(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0 += 1;
        self.changed.notify_all();
    }

    /// Nothing more will be written.
    pub fn complete(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
        self.changed.notify_all();
    }

    /// The number of writes so far and whether the log is complete.
    fn now(&self) -> (u64, bool) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until more than `writes` writes happened or the log is complete.
    /// Bounded, so that a missed wake-up costs a moment rather than the job.
    fn wait_past(&self, writes: u64) {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self
            .changed
            .wait_timeout_while(state, Duration::from_millis(500), |(w, done)| {
                *w == writes && !*done
            })
            .unwrap_or_else(|p| p.into_inner());
    }
}

/// Reads a log file while it is being written: at its current end it waits
/// for the next write instead of reporting the end, until the log is
/// complete. Lets the parsers read a job's output as the recipe prints it.
pub struct FollowLog {
    file: File,
    progress: Arc<LogProgress>,
}

impl FollowLog {
    /// Follows `file` (opened at the start of the log) until `progress` says
    /// the log is complete.
    pub fn new(file: File, progress: Arc<LogProgress>) -> FollowLog {
        FollowLog { file, progress }
    }
}

impl Read for FollowLog {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // Looked at before reading: a write counted after this moment
            // ends the wait below, and one counted before it is in the file.
            let (writes, complete) = self.progress.now();
            let n = self.file.read(buf)?;
            if n > 0 || complete || buf.is_empty() {
                return Ok(n);
            }
            self.progress.wait_past(writes);
        }
    }
}

/// Sets `O_NONBLOCK` on a descriptor.
fn set_nonblocking(fd: std::os::fd::RawFd) -> io::Result<()> {
    // SAFETY: plain fcntl calls on an open descriptor.
    let ok = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
    };
    if ok { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Asks for a 1 MiB pipe buffer (the usual ceiling for unprivileged
/// processes): fewer wake-ups when a recipe prints fast. Failure is harmless.
fn widen_pipe(fd: std::os::fd::RawFd) {
    // SAFETY: plain fcntl on an open descriptor.
    unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, 1 << 20) };
}

/// Start time of `pid` in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
pub fn start_ticks(pid: i32) -> Option<u64> {
    stat_fields(pid).and_then(|f| f.get(19).and_then(|s| s.parse().ok()))
}

/// Fields of `/proc/<pid>/stat` after the command name (state is index 0).
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let raw = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &raw[raw.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Live (non-zombie) processes in group `pgid` or carrying `CRAFTING_JOB_ID=<job_id>`.
pub fn recipe_processes(pgid: Option<i32>, job_id: &str) -> Vec<i32> {
    scan(pgid, job_id).found
}

/// What one pass over `/proc` saw.
struct Scan {
    /// Processes of the recipe.
    found: Vec<i32>,
    /// Processes of this user whose environment could not be read or was
    /// empty: a process in the middle of `execve` shows no environment for a
    /// moment, so it may still be one of the recipe's.
    unsure: usize,
}

fn scan(pgid: Option<i32>, job_id: &str) -> Scan {
    use std::os::unix::fs::MetadataExt;
    let needle = format!("CRAFTING_JOB_ID={job_id}");
    let me = std::process::id() as i32;
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    let mut out = Scan { found: Vec::new(), unsure: 0 };
    let Ok(dir) = fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Some(fields) = stat_fields(pid) else { continue };
        if fields.first().map(String::as_str) == Some("Z") {
            continue;
        }
        let ppid: Option<i32> = fields.get(1).and_then(|s| s.parse().ok());
        let pgrp: Option<i32> = fields.get(2).and_then(|s| s.parse().ok());
        if pgid.is_some() && pgrp == pgid {
            out.found.push(pid);
            continue;
        }
        match fs::read(format!("/proc/{pid}/environ")) {
            Ok(env) if !env.is_empty() => {
                if env.split(|b| *b == 0).any(|entry| entry == needle.as_bytes()) {
                    out.found.push(pid);
                }
            }
            _ => {
                // Init and kernel threads (kthreadd, pid 2, and its
                // children) may show no environment either; they are never
                // a recipe's.
                let kernel = pid <= 2 || ppid == Some(2);
                let ours = entry.metadata().map(|m| m.uid() == uid).unwrap_or(false);
                if ours && !kernel {
                    out.unsure += 1;
                }
            }
        }
    }
    out
}

/// Stops every process of a recipe: SIGTERM, then SIGKILL after `grace`, until
/// none is left or `give_up` has passed since the SIGKILL. Returns the number
/// of processes still seen at the end (0 on success).
pub fn terminate(pgid: Option<i32>, job_id: &str, grace: Duration, give_up: Duration) -> usize {
    terminate_in(pgid, job_id, None, grace, give_up)
}

/// Like [`terminate`], also stopping every process in the job's pids cgroup.
/// When the cgroup is sealed its members are the recipe's processes and
/// `/proc` is not walked; the process group is still signalled.
pub fn terminate_in(
    pgid: Option<i32>,
    job_id: &str,
    cgroup: Option<&JobCgroup>,
    grace: Duration,
    give_up: Duration,
) -> usize {
    let started = Instant::now();
    let mut killing = false;
    // A pass that finds nothing while some process shows no environment is
    // looked at again, a few times, so a child caught mid-`execve` is not missed.
    let mut rechecks = 0;
    let mut pause = Duration::from_millis(1);
    loop {
        let seen = match cgroup {
            Some(cg) if cg.is_sealed() => Scan { found: live_members(cg), unsure: 0 },
            _ => scan(pgid, job_id),
        };
        let mut pids = seen.found;
        if let Some(cg) = cgroup.filter(|cg| !cg.is_sealed()) {
            for pid in live_members(cg) {
                if !pids.contains(&pid) {
                    pids.push(pid);
                }
            }
        }
        if pids.is_empty() {
            if seen.unsure == 0 || rechecks >= 10 {
                return 0;
            }
            rechecks += 1;
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let signal = if killing { libc::SIGKILL } else { libc::SIGTERM };
        if let Some(g) = pgid {
            // SAFETY: plain syscall; a stale group only yields ESRCH.
            unsafe { libc::killpg(g, signal) };
        }
        for pid in &pids {
            // SAFETY: plain syscall on a pid just seen in /proc.
            unsafe { libc::kill(*pid, signal) };
        }
        let elapsed = started.elapsed();
        if !killing && elapsed >= grace {
            killing = true;
            continue;
        }
        if killing && elapsed >= grace + give_up {
            return pids.len();
        }
        // Most processes are gone within a millisecond of the signal (the
        // sandbox's own init is often still exiting when the recipe ends):
        // look again soon, then less and less often.
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// The cgroup's members that are not zombies: a zombie cannot be signalled
/// and leaves once its parent (or init) reaps it.
fn live_members(cgroup: &JobCgroup) -> Vec<i32> {
    let zombie =
        |pid: i32| stat_fields(pid).is_none_or(|f| f.first().map(String::as_str) == Some("Z"));
    cgroup.pids().into_iter().filter(|pid| !zombie(*pid)).collect()
}

/// Kills what is left of a job found `running` at start-up. The group is only
/// signalled when its leader is gone or is still the process recorded at
/// spawn time (same start ticks), so a reused pid is never hit.
pub fn kill_orphan(pgid: Option<i32>, start: Option<u64>, job_id: &str) -> usize {
    let group = pgid.filter(|g| {
        *g > 1
            && match start_ticks(*g) {
                None => true,
                Some(now) => Some(now) == start,
            }
    });
    let cgroup = JobCgroup::existing(job_id);
    let left =
        terminate_in(group, job_id, cgroup.as_ref(), Duration::ZERO, Duration::from_secs(10));
    if let Some(cg) = cgroup
        && left == 0
    {
        cg.remove();
    }
    left
}

/// True when `path` resolves (following symlinks) to a place inside `root`.
pub fn resolves_inside(root: &Path, path: &Path) -> bool {
    match (root.canonicalize(), path.canonicalize()) {
        (Ok(r), Ok(p)) => p.starts_with(r),
        _ => false,
    }
}
