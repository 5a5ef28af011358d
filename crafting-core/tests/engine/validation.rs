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

#[actix_rt::test]
async fn a_repository_whose_git_data_lies_outside_the_roots_is_refused() {
    let fx = Fixture::new();
    let secret = tempfile::tempdir().unwrap();
    git(secret.path(), &["init", "-q"]);
    write(secret.path(), "s.txt", "TOPSECRET");
    git(secret.path(), &["add", "-A"]);
    git(secret.path(), &["commit", "-qm", "secret"]);
    let t = fx.start().await;

    // A .git file pointing outside.
    let gitfile = fx.repos().join("gitfile");
    std::fs::create_dir_all(&gitfile).unwrap();
    std::fs::write(gitfile.join(".git"), format!("gitdir: {}/.git\n", secret.path().display()))
        .unwrap();
    // A .git link pointing outside.
    let gitlink = fx.repos().join("gitlink");
    std::fs::create_dir_all(&gitlink).unwrap();
    std::os::unix::fs::symlink(secret.path().join(".git"), gitlink.join(".git")).unwrap();
    // A bare repository borrowing its objects from outside.
    let borrower = fx.repos().join("borrower.git");
    git(&fx.repos(), &["init", "-q", "--bare", "borrower.git"]);
    std::fs::write(
        borrower.join("objects/info/alternates"),
        format!("{}/.git/objects\n", secret.path().display()),
    )
    .unwrap();

    for repo in [&gitfile, &gitlink, &borrower] {
        let e = t.create_project(&admin(), spec("p", repo, ".", &[("t", "cat s.txt")])).await;
        let e = e.unwrap_err();
        assert_eq!(e.code(), "invalid_git_url", "{}", repo.display());
        assert!(e.to_string().contains("outside"), "{e}");
    }
    // A path outside the roots is refused by its words alone: whether it
    // exists is not revealed.
    let mut s = spec("p", std::path::Path::new("/nonexistent"), ".", &[("t", "true")]);
    s.git_url = "/nonexistent/x".into();
    let missing = t.create_project(&admin(), s.clone()).await.unwrap_err().to_string();
    s.git_url = "/etc".into();
    let existing = t.create_project(&admin(), s).await.unwrap_err().to_string();
    assert_eq!(missing.replace("/nonexistent/x", "P"), existing.replace("/etc", "P"));
    assert!(t.list_projects(&admin()).await.unwrap().is_empty());
}
