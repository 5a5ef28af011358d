use std::time::Duration;

use crafting_core::JobStatus;
use crafting_core::ledger::Ledger;
use futures_util::future::join_all;

use crate::common::*;

#[actix_rt::test]
async fn fifty_jobs_on_two_projects_all_finish_with_git_serialised_per_project() {
    let fx = Fixture::new();
    let one = fx.repo("one", &[("a", "1")]);
    let two = fx.repo("two", &[("b", "2")]);
    let t = fx.start().await;
    t.create_project(&admin(), spec("one", &one, ".", &[("t", "cat a")])).await.unwrap();
    t.create_project(&admin(), spec("two", &two, ".", &[("t", "cat b")])).await.unwrap();
    let enqueues = (0..50).map(|i| {
        let t = t.clone();
        async move { t.enqueue(&admin(), if i % 2 == 0 { "one" } else { "two" }, req("t")).await }
    });
    let jobs: Vec<_> = join_all(enqueues).await;
    for job in jobs {
        let job = job.unwrap();
        let done = t.wait_job(&admin(), &job.id, Duration::from_secs(300)).await.unwrap();
        assert_eq!(done.status, JobStatus::Succeeded, "{done:?}");
    }
    let stats = t.stats().await.unwrap();
    assert_eq!(stats.finished, 50);
    assert_eq!(stats.max_git_ops_per_project, 1, "git work of one project overlapped");
    assert_eq!(t.integrity_check().await.unwrap(), "ok");
}

#[actix_rt::test]
async fn sixteen_writers_doing_read_then_write_never_see_a_locked_database() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("l.sqlite3"), 8).await.unwrap();
    ledger
        .write(|tx| {
            tx.execute_batch(
                "CREATE TABLE counter (n INTEGER NOT NULL); INSERT INTO counter VALUES (0);",
            )?;
            Ok(())
        })
        .await
        .unwrap();
    let tasks = (0..16).map(|_| {
        let ledger = ledger.clone();
        tokio::spawn(async move {
            for _ in 0..100 {
                ledger
                    .write(|tx| {
                        let n: i64 = tx.query_row("SELECT n FROM counter", [], |r| r.get(0))?;
                        tx.execute("UPDATE counter SET n = ?1", [n + 1])?;
                        Ok(())
                    })
                    .await?;
            }
            Ok::<_, crafting_core::Error>(())
        })
    });
    for task in tasks.collect::<Vec<_>>() {
        task.await.unwrap().expect("no write may fail");
    }
    let n: i64 =
        ledger.read(|c| Ok(c.query_row("SELECT n FROM counter", [], |r| r.get(0))?)).await.unwrap();
    assert_eq!(n, 1600);
    assert_eq!(ledger.integrity_check().await.unwrap(), "ok");
}

#[actix_rt::test]
async fn concurrent_registrations_through_the_handle_all_land() {
    let fx = Fixture::new();
    let repo = fx.repo("r", &[("a", "1")]);
    let t = fx.start().await;
    let work = (0..16).map(|i| {
        let t = t.clone();
        let repo = repo.clone();
        async move {
            let (tok, _) = t
                .mint_token(crafting_core::NewToken {
                    name: format!("t{i}"),
                    is_admin: false,
                    ip_cidrs: vec![],
                })
                .await?;
            let me = crafting_core::Caller::user(tok.name);
            t.create_project(&me, spec(&format!("p{i}"), &repo, ".", &[("t", "true")])).await?;
            Ok::<_, crafting_core::Error>(())
        }
    });
    for r in join_all(work).await {
        r.expect("no registration may fail");
    }
    assert_eq!(t.list_projects(&admin()).await.unwrap().len(), 16);
    assert_eq!(t.list_tokens().await.unwrap().len(), 17);
}

#[actix_rt::test]
async fn the_last_admin_token_cannot_be_revoked() {
    let fx = Fixture::new();
    let t = fx.start().await;
    let e = t.revoke_token("admin").await.unwrap_err();
    assert_eq!(e.code(), "last_admin");
    let (second, _) = t
        .mint_token(crafting_core::NewToken {
            name: "ops".into(),
            is_admin: true,
            ip_cidrs: vec![],
        })
        .await
        .unwrap();
    t.revoke_token("admin").await.unwrap();
    assert_eq!(t.revoke_token(&second.name).await.unwrap_err().code(), "last_admin");
    assert_eq!(t.revoke_token("admin").await.unwrap_err().code(), "not_found");
}
