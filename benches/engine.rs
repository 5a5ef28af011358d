//! Engine benchmarks: each figure printed next to a baseline measured in the
//! same run on the same machine. Figures, not pass/fail: nothing here fails
//! on speed.
//!
//! Run: `cargo bench --bench engine` (or `bench/run.sh` for everything).
//! Knobs: `BENCH_JOBS` (200), `BENCH_LOG_MB` (1024), `BENCH_LEDGER_JOBS`
//! (1000000), `BENCH_LEDGER_FINDINGS` (10000000), `BENCH_ONLY` (comma list of
//! sections: overhead,throughput,capture,tail,ledger).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crafting_core::{Caller, Config, CraftingTable, JobRequest, JobStatus, ProjectSpec};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn wanted(section: &str) -> bool {
    match std::env::var("BENCH_ONLY") {
        Ok(list) => list.split(',').any(|s| s.trim() == section),
        Err(_) => true,
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Bench", "-c", "user.email=bench@example.org"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A repository of ten small files.
fn small_repo(root: &Path) -> PathBuf {
    let repo = root.join("repos/small");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    for i in 0..10 {
        std::fs::write(repo.join(format!("file{i}.txt")), format!("line {i}\n").repeat(20))
            .unwrap();
    }
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "ten files"]);
    repo
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn row(figure: &str, value: String, baseline: String, note: &str) {
    println!("| {figure:<44} | {value:>16} | {baseline:>16} | {note} |");
}

fn peak_rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

fn reset_peak_rss() {
    // Writing 5 to clear_refs resets VmHWM to the current RSS.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn spec(repo: &Path, recipes: &[(&str, &str)]) -> ProjectSpec {
    serde_json::from_value(serde_json::json!({
        "name": "small",
        "git_url": repo.display().to_string(),
        "subprojects": [{
            "path": ".",
            "language": "shell",
            "recipes": recipes.iter().map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<std::collections::BTreeMap<_, _>>(),
        }],
    }))
    .unwrap()
}

#[actix_rt::main]
async fn main() {
    let root = tempfile::Builder::new().prefix("ct-bench-").tempdir().unwrap();
    let repo = small_repo(root.path());
    let sha = git(&repo, &["rev-parse", "HEAD"]);
    let mut config = Config::new(root.path().join("engine"));
    config.local_git_roots = vec![root.path().join("repos")];
    config.log_max_bytes = 4 * 1024 * 1024 * 1024;
    let workers = config.runner_workers;
    let table = CraftingTable::start(config).await.unwrap();
    let me = Caller::admin("bench");
    let log_mb = env_num("BENCH_LOG_MB", 1024);
    // Log-like output: lines of 80 characters, as a chatty build prints them.
    let capture_cmd = format!(
        "yes 'compiling module 0042 of 9000: warning: unused variable in src/generated/file.rs' \
         | head -c {}",
        log_mb * 1024 * 1024
    );
    table
        .create_project(
            &me,
            spec(&repo, &[("noop", "true"), ("capture", &capture_cmd), ("small", "echo hello")]),
        )
        .await
        .unwrap();
    let n = env_num("BENCH_JOBS", 200) as usize;

    println!("| figure | crafting-table | baseline | notes |");
    println!("|---|---:|---:|---|");

    if wanted("overhead") {
        // Baseline: the same work by hand, one job at a time.
        let base_repo = root.path().join("baseline.git");
        git(root.path(), &["clone", "-q", "--bare", repo.to_str().unwrap(), "baseline.git"]);
        let mut base = Vec::with_capacity(n);
        for i in 0..n {
            let wt = root.path().join(format!("wt{i}"));
            let t = Instant::now();
            git(&base_repo, &["worktree", "add", "-q", "--detach", wt.to_str().unwrap(), &sha]);
            let ok = Command::new("sh").args(["-c", "true"]).current_dir(&wt).status().unwrap();
            assert!(ok.success());
            git(&base_repo, &["worktree", "remove", "--force", wt.to_str().unwrap()]);
            base.push(ms(t.elapsed()));
        }
        base.sort_by(f64::total_cmp);
        let mut lat = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let job = table
                .enqueue(&me, "small", JobRequest { recipe: "noop".into(), ..Default::default() })
                .await
                .unwrap();
            let done = table.wait_job(&me, &job.id, Duration::from_secs(60)).await.unwrap();
            assert_eq!(done.status, JobStatus::Succeeded);
            lat.push(ms(t.elapsed()));
        }
        lat.sort_by(f64::total_cmp);
        let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
        let (b50, b99) = (percentile(&base, 0.5), percentile(&base, 0.99));
        row(
            "job latency p50, recipe `true` (ms)",
            format!("{p50:.2}"),
            format!("{b50:.2}"),
            &format!("ratio {:.2}x; target <= 1.2x", p50 / b50),
        );
        row("job latency p99 (ms)", format!("{p99:.2}"), format!("{b99:.2}"), "");
        row(
            "engine's own cost per job, p50 (ms)",
            format!("{:.2}", p50 - b50),
            "-".into(),
            "latency minus the direct loop; target < 5 ms",
        );
    }

    if wanted("throughput") {
        let t = Instant::now();
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            let job = table
                .enqueue(&me, "small", JobRequest { recipe: "noop".into(), ..Default::default() })
                .await
                .unwrap();
            ids.push(job.id);
        }
        for id in &ids {
            table.wait_job(&me, id, Duration::from_secs(300)).await.unwrap();
        }
        let rate = n as f64 / t.elapsed().as_secs_f64();
        row(
            &format!("throughput, {workers} workers (jobs/s)"),
            format!("{rate:.1}"),
            "-".into(),
            "target >= 50 jobs/s on 2 cores",
        );
    }

    let mut big_job = None;
    if wanted("capture") || wanted("tail") {
        let out = root.path().join("redirect.out");
        let t = Instant::now();
        let ok = Command::new("sh")
            .args(["-c", &format!("{capture_cmd} > {}", out.display())])
            .status()
            .unwrap();
        assert!(ok.success());
        let base_rate = log_mb as f64 / t.elapsed().as_secs_f64();
        let _ = std::fs::remove_file(&out);
        reset_peak_rss();
        let rss_before = peak_rss_mib();
        let t = Instant::now();
        let job = table
            .enqueue(&me, "small", JobRequest { recipe: "capture".into(), ..Default::default() })
            .await
            .unwrap();
        let done = table.wait_job(&me, &job.id, Duration::from_secs(600)).await.unwrap();
        let rate = log_mb as f64 / t.elapsed().as_secs_f64();
        assert!(done.log_bytes >= log_mb * 1024 * 1024, "log has {} bytes", done.log_bytes);
        row(
            &format!("log capture, {log_mb} MiB to stdout (MiB/s)"),
            format!("{rate:.0}"),
            format!("{base_rate:.0}"),
            &format!("ratio {:.2}x; target >= 0.8x", rate / base_rate),
        );
        let peak = peak_rss_mib();
        row(
            "peak RSS during capture (MiB)",
            format!("{peak:.1}"),
            format!("{rss_before:.1}"),
            &format!(
                "whole bench process; baseline: its RSS before the job; growth {:.1} MiB; target < 64",
                peak - rss_before
            ),
        );
        big_job = Some(done.id);
    }

    if wanted("tail")
        && let Some(big) = big_job
    {
        let small = table
            .enqueue(&me, "small", JobRequest { recipe: "small".into(), ..Default::default() })
            .await
            .unwrap();
        table.wait_job(&me, &small.id, Duration::from_secs(60)).await.unwrap();
        let mut figures = Vec::new();
        for id in [&big, &small.id] {
            let mut lat = Vec::new();
            for _ in 0..1000 {
                let t = Instant::now();
                let view = table.get_job(&me, id).await.unwrap();
                assert!(!view.log_tail.is_empty());
                lat.push(ms(t.elapsed()));
            }
            lat.sort_by(f64::total_cmp);
            figures.push((percentile(&lat, 0.5), percentile(&lat, 0.99)));
        }
        row(
            &format!("get_job with log tail, {log_mb} MiB log, p50/p99 (ms)"),
            format!("{:.3}/{:.3}", figures[0].0, figures[0].1),
            format!("{:.3}/{:.3}", figures[1].0, figures[1].1),
            "baseline: the same call on a 1 KiB log; target p99 < 5 ms",
        );
    }

    if wanted("ledger") {
        ledger_scale(root.path()).await;
    }
    table.shutdown(Duration::from_secs(5)).await;
}

async fn ledger_scale(root: &Path) {
    use crafting_core::ledger::Ledger;
    let jobs = env_num("BENCH_LEDGER_JOBS", 1_000_000);
    let findings = env_num("BENCH_LEDGER_FINDINGS", 10_000_000);
    let dir = root.join("scale");
    let mut config = Config::new(&dir);
    config.local_git_roots = vec![root.join("repos")];
    std::fs::create_dir_all(&config.data_dir).unwrap();
    let t = Instant::now();
    {
        let ledger = Ledger::open(&config.ledger_path(), 4).await.unwrap();
        ledger
            .write(move |tx| {
                let ts = "2026-01-01T00:00:00.000Z";
                for p in 0..10 {
                    tx.execute(
                        "INSERT INTO projects (name, owner, git_url, languages, subprojects, notify,
                                               created_at, updated_at)
                         VALUES (?1, 'bench', '/nowhere', '[]', '[]', '{}', ?2, ?2)",
                        (format!("p{p}"), ts),
                    )?;
                }
                let snapshot = r#"{"recipe":"t","command":"true","subproject":".","language":"shell","timeout_secs":60}"#;
                let mut ins = tx.prepare(
                    "INSERT INTO jobs (id, project, subproject, recipe, status, exit_code,
                                       recipe_snapshot_json, log_path, created_at)
                     VALUES (?1, ?2, '.', 't', 'succeeded', 0, ?3, 'x.log', ?4)",
                )?;
                for j in 0..jobs {
                    ins.execute((format!("{j:032x}"), format!("p{}", j % 10), snapshot, ts))?;
                }
                let mut f = tx.prepare(
                    "INSERT INTO findings (job_id, kind, severity, tool, file, line, col, code,
                                           message, fingerprint, identity, created_at)
                     VALUES (?1, 'lint', 'warn', 'clippy', 'src/lib.rs', ?2, 1, 'clippy::x',
                             'a message of ordinary length for a lint finding', 'ffffffffffffffff',
                             'eeeeeeeeeeeeeeee', ?3)",
                )?;
                // One job with 10,000 findings; the rest spread over the others.
                let heavy = format!("{:032x}", jobs / 2);
                for i in 0..findings.min(10_000) {
                    f.execute((&heavy, i as i64, ts))?;
                }
                for i in 10_000..findings {
                    f.execute((format!("{:032x}", i % jobs), (i % 500) as i64, ts))?;
                }
                Ok(())
            })
            .await
            .unwrap();
    }
    row(
        &format!("ledger fill: {jobs} jobs, {findings} findings (s)"),
        format!("{:.1}", t.elapsed().as_secs_f64()),
        "-".into(),
        "setup, for scale",
    );
    let t = Instant::now();
    let table = CraftingTable::start(config).await.unwrap();
    row(
        "start-up with restart sweep on that ledger (ms)",
        format!("{:.1}", ms(t.elapsed())),
        "-".into(),
        "target < 1000 ms",
    );
    let me = Caller::admin("bench");
    let mut lat = Vec::new();
    for i in 0..200 {
        let t = Instant::now();
        let filter = crafting_core::JobFilter {
            project: Some(format!("p{}", i % 10)),
            status: None,
            limit: Some(50),
        };
        let list = table.list_jobs(&me, filter).await.unwrap();
        assert_eq!(list.len(), 50);
        lat.push(ms(t.elapsed()));
    }
    lat.sort_by(f64::total_cmp);
    row(
        "list jobs of a project, limit 50, p50/p99 (ms)",
        format!("{:.2}/{:.2}", percentile(&lat, 0.5), percentile(&lat, 0.99)),
        "-".into(),
        "target p99 < 20 ms",
    );
    let heavy = format!("{:032x}", jobs / 2);
    let mut lat = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let f = table.findings(&me, &heavy).await.unwrap();
        assert!(f.len() >= 10_000.min(findings as usize));
        lat.push(ms(t.elapsed()));
    }
    lat.sort_by(f64::total_cmp);
    row(
        "findings of a 10,000-finding job, p50/p99 (ms)",
        format!("{:.2}/{:.2}", percentile(&lat, 0.5), percentile(&lat, 0.99)),
        "-".into(),
        "target p99 < 20 ms",
    );
    table.shutdown(Duration::from_secs(5)).await;
}
