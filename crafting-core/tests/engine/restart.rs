use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crafting_core::{CraftingTable, JobStatus, Kind};

use crate::common::*;

fn child_config(dir: &Path) -> crafting_core::Config {
    let mut c = crafting_core::Config::new(dir.join("engine"));
    c.local_git_roots = vec![dir.join("repos")];
    c.runner_workers = 1;
    c.kill_grace = Duration::from_secs(2);
    c
}

/// The engine that gets killed: run by `engine_killed_mid_job_...` in a child
/// process of its own. Ignored in normal runs.
#[actix_rt::test]
#[ignore = "runs only as the child process of the restart test"]
async fn child_engine() {
    let dir = std::path::PathBuf::from(std::env::var("CT_CHILD_DIR").expect("CT_CHILD_DIR"));
    let t = CraftingTable::start(child_config(&dir)).await.unwrap();
    let repo = dir.join("repos/victim");
    let tag = std::env::var("CT_TAG").expect("CT_TAG");
    let long = format!("sleep {tag} & echo started; wait");
    t.create_project(
        &admin(),
        spec(
            "victim",
            &repo,
            ".",
            &[("long", &long), ("quick", "echo quick-done"), ("fail", "exit 4")],
        ),
    )
    .await
    .unwrap();
    let done = run(&t, "victim", req("fail")).await;
    let a = t.enqueue(&admin(), "victim", req("long")).await.unwrap();
    let b = t.enqueue(&admin(), "victim", req("quick")).await.unwrap();
    let c = t.enqueue(&admin(), "victim", req("quick")).await.unwrap();
    std::fs::write(dir.join("ids"), format!("{}\n{}\n{}\n{}\n", done.id, a.id, b.id, c.id))
        .unwrap();
    loop {
        if log(&t, &a.id).await.contains("started") {
            std::fs::write(dir.join("ready"), "").unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn engine_killed_mid_job_restarts_cleanly() {
    let fx = Fixture::new();
    let dir = fx.dir.path().to_path_buf();
    fx.repo("victim", &[("f", "x")]);
    let tag = sleep_tag(1000);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "restart::child_engine", "--nocapture"])
        .env("CT_CHILD_DIR", &dir)
        .env("CT_TAG", &tag)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !dir.join("ready").exists() {
        assert!(start.elapsed() < Duration::from_secs(120), "child engine never got ready");
        assert!(child.try_wait().unwrap().is_none(), "child engine exited early");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        wait_for_args(std::slice::from_ref(&tag), Duration::from_secs(30)).await,
        "the recipe's sleep never ran"
    );
    // Hard kill: no shutdown path runs. Without a sandbox the recipe's
    // process outlives the engine until the restart sweeps it; under
    // bubblewrap (--die-with-parent) it dies with the engine. Either way
    // none may be left once the engine is back.
    child.kill().unwrap();
    child.wait().unwrap();
    let ids: Vec<String> =
        std::fs::read_to_string(dir.join("ids")).unwrap().lines().map(str::to_owned).collect();
    let (done, a, b, c) = (&ids[0], &ids[1], &ids[2], &ids[3]);

    let t = CraftingTable::start(child_config(&dir)).await.unwrap();
    let job_a = t.job_status(&admin(), a).await.unwrap();
    assert_eq!(job_a.status, JobStatus::Failed);
    assert_eq!(job_a.exit_code, Some(-1));
    let text = log(&t, a).await;
    assert!(text.trim_end().ends_with("[crafting-table] runner restart, job orphaned"), "{text}");
    assert!(pids_with_arg(&tag).is_empty(), "orphaned sleep {tag} survived the restart");
    assert!(processes_of(a).is_empty());
    assert!(!t.config().workspace_dir.join("victim").join(a).exists());

    for id in [b, c] {
        let j = t.wait_job(&admin(), id, Duration::from_secs(60)).await.unwrap();
        assert_eq!(j.status, JobStatus::Succeeded, "{j:?}");
        assert!(log(&t, id).await.contains("quick-done"));
    }
    let before = t.job_status(&admin(), done).await.unwrap();
    assert_eq!(before.status, JobStatus::Failed);
    assert_eq!(before.exit_code, Some(4));
    let f = t.findings(&admin(), done).await.unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].finding.kind, Kind::RecipeFail);
    assert_eq!(t.integrity_check().await.unwrap(), "ok");
}

#[test]
fn orphan_cleanup_never_hits_a_reused_pid() {
    let mut other = Command::new("sleep").arg("30").process_group(0).spawn().unwrap();
    let pid = other.id() as i32;
    let ticks = crafting_core::process::start_ticks(pid).unwrap();
    // Recorded start time differs: the group belongs to someone else now.
    crafting_core::process::kill_orphan(Some(pid), Some(ticks + 1), "no-such-job");
    std::thread::sleep(Duration::from_millis(100));
    assert!(other.try_wait().unwrap().is_none(), "an unrelated process was killed");
    // Same start time: it is ours, and it goes.
    crafting_core::process::kill_orphan(Some(pid), Some(ticks), "no-such-job");
    let status = other.wait().unwrap();
    assert!(!status.success());
}
