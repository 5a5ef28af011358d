use std::time::Duration;

use crafting_core::{CraftingTable, JobStatus};

use crate::common::*;

#[actix_rt::test]
async fn two_hundred_megabytes_of_output_stream_to_disk_in_flat_memory() {
    let fx = Fixture::new();
    let repo = fx.repo("loud", &[("f", "x")]);
    let t = fx.start().await;
    let cmd = "head -c 200000000 /dev/zero | tr '\\0' 'x'; echo; echo done-printing";
    t.create_project(&admin(), spec("loud", &repo, ".", &[("print", cmd)])).await.unwrap();
    let before = rss_kib();
    let job = run(&t, "loud", req("print")).await;
    let grown = rss_kib().saturating_sub(before);
    assert_eq!(job.status, JobStatus::Succeeded);
    let path = t.job_log_path(&admin(), &job.id).await.unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size > 200_000_000, "log is {size} bytes");
    assert_eq!(job.log_bytes, size);
    assert!(grown < 48 * 1024, "resident memory grew by {grown} KiB while capturing 200 MB");
    let tail = t.get_job(&admin(), &job.id).await.unwrap().log_tail;
    assert!(tail.contains("done-printing"));
    assert!(tail.len() < 2 * 1024 * 1024, "tail is {} bytes", tail.len());
}

#[actix_rt::test]
async fn output_past_the_cap_ends_with_the_marker() {
    let fx = Fixture::new();
    let repo = fx.repo("capped", &[("f", "x")]);
    let mut cfg = fx.config();
    cfg.log_max_bytes = 1_000_000;
    let t = CraftingTable::start(cfg).await.unwrap();
    let cmd = "head -c 5000000 /dev/zero | tr '\\0' 'y'; echo after-the-flood";
    t.create_project(&admin(), spec("capped", &repo, ".", &[("print", cmd)])).await.unwrap();
    let job = run(&t, "capped", req("print")).await;
    assert_eq!(job.status, JobStatus::Succeeded, "the recipe keeps running past the cap");
    let text = log(&t, &job.id).await;
    assert!(text.len() < 1_010_000, "log is {} bytes", text.len());
    let marker = text.find("[crafting-table] log truncated at 1000000 bytes").expect("marker");
    assert!(!text[marker..].contains("after-the-flood"), "output past the cap was kept");
    // After the marker only the engine's own closing line follows.
    let rest: Vec<&str> = text[marker..].lines().collect();
    assert_eq!(rest.len(), 2, "{rest:?}");
    assert!(rest[1].starts_with("[crafting-table] exit code 0"));
}

#[actix_rt::test]
async fn a_timed_out_recipe_leaves_no_process_behind() {
    let fx = Fixture::new();
    let repo = fx.repo("bg", &[("f", "x")]);
    let t = fx.start().await;
    // Processes are found on the host by their unique sleep durations: the
    // recipe may run in a pid namespace of its own, where `$!` means nothing
    // to the host.
    let tags: Vec<String> = (0..5).map(|i| sleep_tag(1000 + i)).collect();
    let cmd = format!(
        "sleep {} & \
         (sleep {} &) ; \
         setsid sleep {} & \
         sh -c 'sleep {} &'; \
         setsid sh -c 'trap \"\" TERM; sleep {} & wait' & \
         echo started; sleep 1000",
        tags[0], tags[1], tags[2], tags[3], tags[4]
    );
    let mut s = spec("bg", &repo, ".", &[("spawn", &cmd)]);
    s.subprojects[0].timeout_secs = Some(5);
    t.create_project(&admin(), s).await.unwrap();
    let job = t.enqueue(&admin(), "bg", req("spawn")).await.unwrap();
    assert!(wait_for_args(&tags, Duration::from_secs(4)).await, "the recipe's sleeps never ran");
    let job = t.wait_job(&admin(), &job.id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(job.status, JobStatus::TimedOut, "{job:?}");
    assert_eq!(job.exit_code, Some(-1));
    assert!(log(&t, &job.id).await.contains("timed out after 5 s"));
    for tag in &tags {
        assert!(pids_with_arg(tag).is_empty(), "sleep {tag} outlived its job");
    }
    assert!(processes_of(&job.id).is_empty());
}

#[actix_rt::test]
async fn background_children_of_a_finished_recipe_are_stopped() {
    let fx = Fixture::new();
    let repo = fx.repo("bg2", &[("f", "x")]);
    let t = fx.start().await;
    let tag = sleep_tag(1000);
    // The shell ends normally (after a second, so the test can see the
    // detached child), leaving its detached child behind.
    let cmd = format!("setsid sleep {tag} > /dev/null 2>&1 & echo ok; sleep 1");
    t.create_project(&admin(), spec("bg2", &repo, ".", &[("spawn", &cmd)])).await.unwrap();
    let job = t.enqueue(&admin(), "bg2", req("spawn")).await.unwrap();
    assert!(wait_for_args(std::slice::from_ref(&tag), Duration::from_secs(30)).await);
    let job = t.wait_job(&admin(), &job.id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(job.status, JobStatus::Succeeded);
    // Give the kernel a moment to reap.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(pids_with_arg(&tag).is_empty(), "detached child sleep {tag} outlived its job");
}
