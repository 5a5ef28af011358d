use std::time::Duration;

use crafting_core::{JobRequest, JobStatus, Kind};
use crafting_parsers::{Finding, ParseContext, Parser, Registry};

use crate::common::*;

#[actix_rt::test]
async fn job_runs_at_the_requested_commit_in_the_subproject_folder() {
    let fx = Fixture::new();
    let repo = fx.repo("multi", &[("sub/a.txt", "one\n"), ("README", "x\n")]);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    git(&repo, &["tag", "v1"]);
    git(&repo, &["checkout", "-q", "-b", "feature"]);
    write(&repo, "sub/a.txt", "two\n");
    git(&repo, &["commit", "-qam", "feature work"]);
    let feature = git(&repo, &["rev-parse", "HEAD"]);
    git(&repo, &["checkout", "-q", "main"]);
    write(&repo, "sub/a.txt", "three\n");
    git(&repo, &["commit", "-qam", "main work"]);
    let main = git(&repo, &["rev-parse", "HEAD"]);

    let t = fx.start().await;
    let cmd = "echo \"cwd=$(pwd)\"; echo \"head=$(git rev-parse HEAD)\"; echo \"content=$(cat a.txt)\"; exit 3";
    t.create_project(&admin(), spec("multi", &repo, "sub", &[("show", cmd)])).await.unwrap();

    for (r, sha, content) in [
        (None, &main, "three"),
        (Some("feature"), &feature, "two"),
        (Some("v1"), &first, "one"),
        (Some(first.as_str()), &first, "one"),
    ] {
        let job =
            run(&t, "multi", JobRequest { git_ref: r.map(str::to_owned), ..req("show") }).await;
        assert_eq!(job.status, JobStatus::Failed, "{job:?}");
        assert_eq!(job.exit_code, Some(3));
        assert_eq!(job.sha.as_deref(), Some(sha.as_str()));
        let text = log(&t, &job.id).await;
        assert!(text.contains(&format!("head={sha}")), "{text}");
        assert!(text.contains(&format!("content={content}")), "{text}");
        let wt = t.config().workspace_dir.canonicalize().unwrap().join("multi").join(&job.id);
        assert!(text.contains(&format!("cwd={}/sub", wt.display())), "{text}");
        assert!(!wt.exists(), "worktree {} left behind", wt.display());
        assert_eq!(job.log_bytes, text.len() as u64);
        // No parser for "shell": the generic fallback explains the failure.
        let findings = t.findings(&admin(), &job.id).await.unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].finding.kind, Kind::RecipeFail);
        assert_eq!(findings[0].finding.code, "exit_3");
        assert_eq!(job.findings_count, 1);
    }
    // The default branch was detected from the remote.
    assert_eq!(
        t.get_project(&admin(), "multi").await.unwrap().default_branch.as_deref(),
        Some("main")
    );
    let view = t
        .get_job(&admin(), &t.list_jobs(&admin(), Default::default()).await.unwrap()[0].id)
        .await
        .unwrap();
    assert!(view.log_tail.contains("content=one"), "{}", view.log_tail);
}

#[actix_rt::test]
async fn a_known_commit_builds_without_the_remote_and_a_branch_always_fetches() {
    let fx = Fixture::new();
    let repo = fx.repo("gone", &[("a.txt", "one\n")]);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    let t = fx.start().await;
    let cmd = "echo \"content=$(cat a.txt)\"";
    t.create_project(&admin(), spec("gone", &repo, ".", &[("show", cmd)])).await.unwrap();
    let at = |r: &str| JobRequest { git_ref: Some(r.to_owned()), ..req("show") };

    // A branch builds its tip as the remote has it now, pushed or not since
    // the last fetch.
    let job = run(&t, "gone", at("main")).await;
    assert_eq!(job.sha.as_deref(), Some(first.as_str()));
    write(&repo, "a.txt", "two\n");
    git(&repo, &["commit", "-qam", "second"]);
    let second = git(&repo, &["rev-parse", "HEAD"]);
    let job = run(&t, "gone", at("main")).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
    assert_eq!(job.sha.as_deref(), Some(second.as_str()));
    assert!(log(&t, &job.id).await.contains("content=two"));

    // The remote disappears. Commits the clone holds still build, by full id.
    let moved = fx.dir.path().join("moved-away");
    std::fs::rename(&repo, &moved).unwrap();
    for (sha, content) in [(&first, "one"), (&second, "two")] {
        let job = run(&t, "gone", at(sha)).await;
        assert_eq!(job.status, JobStatus::Succeeded, "{job:?}: {}", log(&t, &job.id).await);
        assert_eq!(job.sha.as_deref(), Some(sha.as_str()));
        assert!(log(&t, &job.id).await.contains(&format!("content={content}")));
    }

    // Anything else still asks the remote, and fails without it: a branch,
    // the default branch, an abbreviated id, a commit the clone lacks.
    let unknown = "0123456789abcdef0123456789abcdef01234567";
    for r in [Some("main"), None, Some(&second[..12]), Some(unknown)] {
        let job =
            run(&t, "gone", JobRequest { git_ref: r.map(str::to_owned), ..req("show") }).await;
        assert_eq!(job.status, JobStatus::Failed, "{r:?}: {job:?}");
        let text = log(&t, &job.id).await;
        assert!(text.contains("checkout failed: git fetch failed"), "{r:?}: {text}");
    }
}

#[actix_rt::test]
async fn a_job_keeps_the_recipe_it_was_queued_with() {
    let fx = Fixture::new();
    let repo = fx.repo("snap", &[("f", "x")]);
    let mut cfg = fx.config();
    cfg.runner_workers = 1;
    let t = crafting_core::CraftingTable::start(cfg).await.unwrap();
    t.create_project(
        &admin(),
        spec("snap", &repo, ".", &[("block", "sleep 2"), ("say", "echo old-recipe")]),
    )
    .await
    .unwrap();
    let blocker = t.enqueue(&admin(), "snap", req("block")).await.unwrap();
    let queued = t.enqueue(&admin(), "snap", req("say")).await.unwrap();
    t.update_project(&admin(), "snap", spec("snap", &repo, ".", &[("say", "echo new-recipe")]))
        .await
        .unwrap();
    let done = t.wait_job(&admin(), &queued.id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.recipe_snapshot.command, "echo old-recipe");
    let text = log(&t, &queued.id).await;
    assert!(text.contains("\nold-recipe\n"), "{text}");
    t.wait_job(&admin(), &blocker.id, Duration::from_secs(60)).await.unwrap();
}

struct Boom;

impl Parser for Boom {
    fn claims(&self, _: &str) -> bool {
        true
    }
    fn parse(&self, _: &ParseContext, _: &mut dyn std::io::BufRead) -> Vec<Finding> {
        panic!("parser bug")
    }
}

#[actix_rt::test]
async fn a_panicking_parser_fails_nothing_but_its_findings() {
    let fx = Fixture::new();
    let repo = fx.repo("boom", &[("f", "x")]);
    let mut reg = Registry::with_defaults();
    reg.register("boom", Box::new(Boom));
    let t = crafting_core::CraftingTable::start_with_parsers(fx.config(), reg).await.unwrap();
    let mut s = spec("boom", &repo, ".", &[("go", "echo hi")]);
    s.subprojects[0].language = "boom".into();
    t.create_project(&admin(), s).await.unwrap();
    let job = run(&t, "boom", req("go")).await;
    assert_eq!(job.status, JobStatus::Succeeded);
    assert!(log(&t, &job.id).await.contains("a findings parser panicked"));
    // The runner is still there and runs the next job.
    let again = run(&t, "boom", req("go")).await;
    assert_eq!(again.status, JobStatus::Succeeded);
    assert_eq!(t.stats().await.unwrap().finished, 2);
}

#[actix_rt::test]
async fn the_recipe_sees_no_server_secret() {
    let fx = Fixture::new();
    let repo = fx.repo("env", &[("f", "x")]);
    // SAFETY: set before the engine starts any thread in this test; nextest
    // runs each test in its own process.
    unsafe {
        std::env::set_var("CRAFTING_SMTP_PASS", "canary-smtp-6b1f");
        std::env::set_var("CRAFTING_AGENT_TOKEN", "canary-agent-93c2");
        std::env::set_var("CRAFTING_SOMETHING_NEW", "canary-new-0d7e");
    }
    let t = fx.start().await;
    t.create_project(&admin(), spec("env", &repo, ".", &[("env", "env")])).await.unwrap();
    let job = run(&t, "env", req("env")).await;
    let text = log(&t, &job.id).await;
    assert!(text.contains(&format!("CRAFTING_JOB_ID={}", job.id)), "{text}");
    assert!(text.contains("CRAFTING_PROJECT=env"));
    assert!(text.contains("CI=true"));
    for canary in ["canary-smtp-6b1f", "canary-agent-93c2", "canary-new-0d7e"] {
        assert!(!text.contains(canary), "{canary} leaked: {text}");
    }
    let names: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("CRAFTING_"))
        .map(|l| l.split('=').next().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
}

#[actix_rt::test]
async fn cancel_a_queued_and_a_running_job() {
    let fx = Fixture::new();
    let repo = fx.repo("cancel", &[("f", "x")]);
    let mut cfg = fx.config();
    cfg.runner_workers = 1;
    let t = crafting_core::CraftingTable::start(cfg).await.unwrap();
    let tag = sleep_tag(300);
    let cmd = format!("sleep {tag} & echo started; wait");
    t.create_project(&admin(), spec("cancel", &repo, ".", &[("long", &cmd)])).await.unwrap();
    let running = t.enqueue(&admin(), "cancel", req("long")).await.unwrap();
    let queued = t.enqueue(&admin(), "cancel", req("long")).await.unwrap();

    let c = t.cancel_job(&admin(), &queued.id).await.unwrap();
    assert_eq!(c.status, JobStatus::Cancelled);

    for _ in 0..600 {
        if log(&t, &running.id).await.contains("started") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(wait_for_args(std::slice::from_ref(&tag), Duration::from_secs(30)).await);
    let c = t.cancel_job(&admin(), &running.id).await.unwrap();
    assert_eq!(c.status, JobStatus::Cancelled);
    assert!(pids_with_arg(&tag).is_empty(), "background sleep {tag} survived the cancel");
    assert!(processes_of(&running.id).is_empty());
    // Cancelling again is a conflict, not a crash.
    let again = t.cancel_job(&admin(), &running.id).await.unwrap_err();
    assert_eq!(again.code(), "job_finished");
}

/// True when `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state =
                s[s.rfind(')').unwrap() + 1..].split_whitespace().next().unwrap().to_owned();
            state != "Z"
        }
        Err(_) => false,
    }
}

#[test]
fn gc_prunes_stale_worktrees_and_collects_idle_clones() {
    use crafting_core::workspace::Workspace;
    let fx = Fixture::new();
    let repo = fx.repo("g", &[("a", "1")]);
    let ws = Workspace::new(fx.dir.path().join("ws")).unwrap();
    let url = repo.display().to_string();
    let stale = ws.materialize("g", &url, None, None, "stale").unwrap();
    let busy = ws.materialize("g", &url, None, None, "busy").unwrap();
    assert!(stale.path.join("a").exists() && busy.path.join("a").exists());
    std::thread::sleep(Duration::from_millis(50));
    let report =
        ws.gc(Duration::from_millis(10), Duration::from_secs(3600), &["busy".into()]).unwrap();
    assert_eq!(report.worktrees_pruned, 1);
    assert_eq!(report.clones_collected, 0);
    assert!(!stale.path.exists());
    assert!(busy.path.exists(), "a running job's worktree must survive gc");
    let report = ws.gc(Duration::from_secs(3600), Duration::ZERO, &[]).unwrap();
    assert_eq!(report.clones_collected, 1, "an idle clone is gc'd with the git CLI");
    // The clone still serves jobs afterwards.
    assert!(ws.materialize("g", &url, None, None, "after").unwrap().path.join("a").exists());
}
