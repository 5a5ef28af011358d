use crafting_core::{JobRequest, JobStatus};

use crate::common::*;

#[actix_rt::test]
async fn hostile_names_paths_refs_and_urls_are_refused_and_nothing_is_written() {
    let fx = Fixture::new();
    let repo = fx.repo("good", &[("f", "x"), ("sub/g", "y")]);
    let outside = tempfile::tempdir().unwrap();
    git(outside.path(), &["init", "-q"]);
    let t = fx.start().await;

    for name in ["../x", "a/b", ".", "..", "", "-rf", &"n".repeat(5_000_000)] {
        let e =
            t.create_project(&admin(), spec(name, &repo, ".", &[("t", "true")])).await.unwrap_err();
        assert_eq!(e.code(), "invalid_name", "{name:.20}");
        assert!(e.is_client_error());
    }
    for path in ["../x", "sub/../../x", "/etc", ".git/hooks"] {
        let e =
            t.create_project(&admin(), spec("p", &repo, path, &[("t", "true")])).await.unwrap_err();
        assert_eq!(e.code(), "invalid_subproject", "{path}");
    }
    let url_cases = [
        "--upload-pack=touch /tmp/pwned".to_owned(),
        "ext::sh -c touch% /tmp/pwned".to_owned(),
        format!("file://{}", outside.path().display()),
        outside.path().display().to_string(),
        format!("file://{}", t.config().workspace_dir.display()),
        "git@example.org:a/b.git".to_owned(),
    ];
    for url in &url_cases {
        let mut s = spec("p", &repo, ".", &[("t", "true")]);
        s.git_url = url.clone();
        let e = t.create_project(&admin(), s).await.unwrap_err();
        assert_eq!(e.code(), "invalid_git_url", "{url}");
        assert!(e.to_string().contains("git URL"), "{e}");
    }
    assert!(t.list_projects(&admin()).await.unwrap().is_empty(), "nothing may be written");

    t.create_project(&admin(), spec("good", &repo, ".", &[("t", "true")])).await.unwrap();
    for r in ["-x", "--upload-pack=evil", "a..b", "HEAD@{1}"] {
        let e = t
            .enqueue(&admin(), "good", JobRequest { git_ref: Some(r.into()), ..req("t") })
            .await
            .unwrap_err();
        assert_eq!(e.code(), "invalid_ref", "{r}");
    }
    let e = t.enqueue(&admin(), "good", req("nope")).await.unwrap_err();
    assert_eq!(e.code(), "unknown_recipe");
    assert!(e.to_string().contains("\"t\""), "names the recipes it has: {e}");
    let e = t
        .enqueue(&admin(), "good", JobRequest { subproject: Some("sub".into()), ..req("t") })
        .await
        .unwrap_err();
    assert_eq!(e.code(), "unknown_subproject");
    assert!(t.list_jobs(&admin(), Default::default()).await.unwrap().is_empty());
    // Another token neither sees nor touches the project.
    let stranger = crafting_core::Caller::user("stranger");
    assert_eq!(t.get_project(&stranger, "good").await.unwrap_err().code(), "not_found");
    assert_eq!(t.enqueue(&stranger, "good", req("t")).await.unwrap_err().code(), "not_found");
    assert_eq!(t.integrity_check().await.unwrap(), "ok");
}

#[actix_rt::test]
async fn a_subproject_through_a_symlink_out_of_the_repo_is_refused() {
    let fx = Fixture::new();
    let repo = fx.repo("link", &[("f", "x")]);
    std::os::unix::fs::symlink("/etc", repo.join("sub")).unwrap();
    git(&repo, &["add", "sub"]);
    git(&repo, &["commit", "-qm", "link"]);
    let t = fx.start().await;
    t.create_project(&admin(), spec("link", &repo, "sub", &[("t", "cat passwd")])).await.unwrap();
    let job = run(&t, "link", req("t")).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.reason.as_deref().unwrap_or("").contains("leaves the repository"), "{job:?}");
    assert!(!log(&t, &job.id).await.contains("root:"), "the recipe must not have run");
}
