//! Versioned schema migrations, applied in order at start-up.
//!
//! `PRAGMA user_version` holds the number of migrations applied. Each entry
//! runs in its own IMMEDIATE transaction together with the version bump, so a
//! crash mid-migration leaves the previous version intact.

/// The migrations, oldest first. Never edit one that has shipped: append.
pub const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
    CREATE TABLE tokens (
        id            INTEGER PRIMARY KEY,
        name          TEXT NOT NULL UNIQUE,
        secret_sha256 TEXT NOT NULL UNIQUE,
        is_admin      INTEGER NOT NULL DEFAULT 0,
        ip_cidrs      TEXT NOT NULL DEFAULT '[]',
        created_at    TEXT NOT NULL,
        revoked_at    TEXT
    );
    CREATE TABLE projects (
        id             INTEGER PRIMARY KEY,
        name           TEXT NOT NULL UNIQUE,
        owner          TEXT NOT NULL,
        git_url        TEXT NOT NULL,
        default_branch TEXT,
        languages      TEXT NOT NULL,
        subprojects    TEXT NOT NULL,
        notify         TEXT NOT NULL,
        created_at     TEXT NOT NULL,
        updated_at     TEXT NOT NULL
    );
    CREATE INDEX projects_owner ON projects(owner);
    CREATE TABLE jobs (
        id                   TEXT PRIMARY KEY,
        project              TEXT NOT NULL REFERENCES projects(name) ON DELETE CASCADE,
        subproject           TEXT NOT NULL,
        recipe               TEXT NOT NULL,
        git_ref              TEXT,
        sha                  TEXT,
        status               TEXT NOT NULL CHECK (status IN
                               ('queued','running','succeeded','failed','timed_out','cancelled')),
        exit_code            INTEGER,
        reason               TEXT,
        recipe_snapshot_json TEXT NOT NULL,
        log_path             TEXT NOT NULL,
        log_bytes            INTEGER NOT NULL DEFAULT 0,
        findings_count       INTEGER NOT NULL DEFAULT 0,
        pgid                 INTEGER,
        pgid_start_ticks     INTEGER,
        created_at           TEXT NOT NULL,
        started_at           TEXT,
        finished_at          TEXT
    );
    CREATE INDEX jobs_project_id ON jobs(project, id);
    CREATE INDEX jobs_status_id ON jobs(status, id);
    CREATE INDEX jobs_lineage ON jobs(project, subproject, recipe, id);
    CREATE TABLE findings (
        id            INTEGER PRIMARY KEY,
        job_id        TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        kind          TEXT NOT NULL,
        severity      TEXT NOT NULL,
        tool          TEXT NOT NULL,
        file          TEXT,
        line          INTEGER,
        col           INTEGER,
        code          TEXT NOT NULL,
        message       TEXT NOT NULL,
        suggested_fix TEXT,
        fingerprint   TEXT NOT NULL,
        identity      TEXT NOT NULL,
        raw_json      TEXT,
        created_at    TEXT NOT NULL
    );
    CREATE INDEX findings_job ON findings(job_id, id);
    CREATE TABLE digest_runs (
        id           INTEGER PRIMARY KEY,
        date         TEXT NOT NULL,
        project_name TEXT NOT NULL,
        recipients   TEXT NOT NULL,
        status       TEXT NOT NULL,
        error        TEXT,
        sent_at      TEXT,
        dry_run      INTEGER NOT NULL DEFAULT 0,
        UNIQUE (date, project_name)
    );
    CREATE TABLE patch_attempts (
        id             INTEGER PRIMARY KEY,
        job_id         TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        finding_id     INTEGER NOT NULL REFERENCES findings(id) ON DELETE CASCADE,
        attempt_number INTEGER NOT NULL,
        status         TEXT NOT NULL,
        branch         TEXT,
        diff           TEXT,
        explanation    TEXT,
        confidence     REAL,
        verify_job_id  TEXT REFERENCES jobs(id) ON DELETE SET NULL,
        pr_url         TEXT,
        error          TEXT,
        created_at     TEXT NOT NULL,
        updated_at     TEXT NOT NULL,
        UNIQUE (finding_id, attempt_number)
    );
    CREATE INDEX patch_attempts_job ON patch_attempts(job_id);
    "#,
    // 2: digest delivery bookkeeping and the digest's window queries.
    r#"
    ALTER TABLE digest_runs ADD COLUMN claimed_at TEXT;
    ALTER TABLE digest_runs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE digest_runs ADD COLUMN window_start TEXT;
    ALTER TABLE digest_runs ADD COLUMN window_end TEXT;
    ALTER TABLE digest_runs ADD COLUMN subject TEXT;
    CREATE INDEX digest_runs_project_date ON digest_runs(project_name, date);
    CREATE INDEX jobs_project_finished ON jobs(project, finished_at);
    CREATE INDEX patch_attempts_created ON patch_attempts(created_at);
    "#,
    // 3: the patch loop's progress and fix source; attempt ids are never
    // reused (AUTOINCREMENT), so an attempt of a deleted project can never
    // be mistaken for a later one.
    r#"
    CREATE TABLE patch_attempts_v3 (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id         TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        finding_id     INTEGER NOT NULL REFERENCES findings(id) ON DELETE CASCADE,
        attempt_number INTEGER NOT NULL,
        status         TEXT NOT NULL,
        stage          TEXT NOT NULL DEFAULT 'done',
        source         TEXT,
        branch         TEXT,
        diff           TEXT,
        explanation    TEXT,
        confidence     REAL,
        verify_job_id  TEXT REFERENCES jobs(id) ON DELETE SET NULL,
        pr_url         TEXT,
        error          TEXT,
        created_at     TEXT NOT NULL,
        updated_at     TEXT NOT NULL,
        UNIQUE (finding_id, attempt_number)
    );
    INSERT INTO patch_attempts_v3 (id, job_id, finding_id, attempt_number, status, branch, diff,
                                   explanation, confidence, verify_job_id, pr_url, error,
                                   created_at, updated_at)
        SELECT id, job_id, finding_id, attempt_number, status, branch, diff, explanation,
               confidence, verify_job_id, pr_url, error, created_at, updated_at
        FROM patch_attempts;
    DROP TABLE patch_attempts;
    ALTER TABLE patch_attempts_v3 RENAME TO patch_attempts;
    CREATE INDEX patch_attempts_job ON patch_attempts(job_id);
    CREATE INDEX patch_attempts_created ON patch_attempts(created_at);
    CREATE INDEX patch_attempts_finding ON patch_attempts(finding_id);
    CREATE INDEX patch_attempts_verify_job ON patch_attempts(verify_job_id);
    CREATE INDEX patch_attempts_stage ON patch_attempts(stage);
    "#,
];
