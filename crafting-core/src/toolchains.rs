//! The toolchains of the image: one table, probed by `doctor` and exercised
//! by `smoke`.
//!
//! [`TOOLCHAINS`] is the single list of what the polyglot image carries. The
//! same names appear in `docker/Dockerfile` (its `# provides:` comments), in
//! `docker/smoke.sh` and in the README's toolchain matrix; a test keeps the
//! four in step.
//!
//! - [`doctor`] finds each entry and asks it for its version; nothing is
//!   compiled. An entry that cannot be found is reported missing.
//! - [`smoke`] goes further for every entry that is present: it writes a
//!   hello-world into a fresh folder and compiles and runs it (or, for plain
//!   tools, runs them on a tiny input or just asks for the version). A
//!   missing entry is reported as missing, never as a failure, so the smoke
//!   test runs on a developer machine that has only some of the toolchains.
//!
//! ```no_run
//! use crafting_core::toolchains;
//!
//! print!("{}", toolchains::render_table(&toolchains::doctor(None)));
//! let dir = std::env::temp_dir().join("crafting-smoke");
//! let results = toolchains::smoke(&dir);
//! print!("{}", toolchains::render_smoke(&results));
//! std::process::exit(if toolchains::smoke_passed(&results) { 0 } else { 1 });
//! ```

use std::ffi::OsString;
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use regex::Regex;

/// What every hello-world prints.
pub const GREETING: &str = "hello from crafting-table";

/// The line `docker/smoke.sh` and [`render_smoke`] end with when every
/// toolchain passed and none was missing.
pub const ALL_GREEN: &str = "=== ALL TOOLCHAINS GREEN ===";

/// How long a version query may take.
pub const VERSION_TIMEOUT: Duration = Duration::from_secs(60);

/// How long one hello-world step may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(300);

/// Where an entry's main binary is looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locate {
    /// The first of these command names found on the search path.
    OnPath(&'static [&'static str]),
    /// `$VAR/<rel>`, for an install that lives beside the default one (JDK 21).
    InEnvDir {
        /// Environment variable naming the install folder.
        var: &'static str,
        /// The binary, relative to that folder.
        rel: &'static str,
    },
}

/// A hello-world: files written to a fresh folder, then commands run in it.
///
/// In file contents nothing is substituted. In step arguments (and in the
/// entry's environment values), `{bin}` is the entry's located binary, `{bindir}` its
/// folder and `{dir}` the hello-world folder. A step's first word that is
/// neither is looked up on the search path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloWorld {
    /// `(relative path, contents)` pairs.
    pub files: &'static [(&'static str, &'static str)],
    /// Commands run one after the other; each must exit 0.
    pub steps: &'static [&'static [&'static str]],
    /// Whether the last step's output must contain [`GREETING`]; `false` for
    /// checkers whose success is their exit status.
    pub prints_greeting: bool,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Toolchain {
    /// The name used everywhere: README, Dockerfile, smoke.sh, output.
    pub name: &'static str,
    /// How to find the binary.
    pub locate: Locate,
    /// Arguments that make the binary print its version.
    pub version_args: &'static [&'static str],
    /// When set, the version is read from the first output line containing
    /// this text (for tools that print other versions first).
    pub version_marker: Option<&'static str>,
    /// Extra environment for the version query and every hello-world step.
    pub env: &'static [(&'static str, &'static str)],
    /// The hello-world, for entries that have one; plain tools only report
    /// their version.
    pub hello: Option<HelloWorld>,
}

const HELLO_C: &str = "#include <stdio.h>\nint main(void) {\n    puts(\"hello from crafting-table\");\n    return 0;\n}\n";
const HELLO_SH: &str = "#!/bin/sh\necho \"hello from crafting-table\"\n";
const HELLO_PY: &str = "print(\"hello from crafting-table\")\n";
const HELLO_TS: &str =
    "const greeting: string = \"hello from crafting-table\";\nconsole.log(greeting);\n";
const HELLO_JAVA: &str = "public class Hello {\n    public static void main(String[] args) {\n        System.out.println(\"hello from crafting-table\");\n    }\n}\n";

/// Compiles `Hello.java` with the `javac` beside the located `java` and runs it.
const JAVA_HELLO: HelloWorld = HelloWorld {
    files: &[("Hello.java", HELLO_JAVA)],
    steps: &[&["{bindir}/javac", "-d", ".", "Hello.java"], &["{bin}", "-cp", ".", "Hello"]],
    prints_greeting: true,
};

const fn tool(name: &'static str, bins: &'static [&'static str]) -> Toolchain {
    Toolchain {
        name,
        locate: Locate::OnPath(bins),
        version_args: &["--version"],
        version_marker: None,
        env: &[],
        hello: None,
    }
}

const fn with_hello(
    name: &'static str,
    bins: &'static [&'static str],
    hello: HelloWorld,
) -> Toolchain {
    Toolchain {
        name,
        locate: Locate::OnPath(bins),
        version_args: &["--version"],
        version_marker: None,
        env: &[],
        hello: Some(hello),
    }
}

const fn hello(
    files: &'static [(&'static str, &'static str)],
    steps: &'static [&'static [&'static str]],
) -> HelloWorld {
    HelloWorld { files, steps, prints_greeting: true }
}

/// Every toolchain and tool of the image, in the order they are reported.
pub static TOOLCHAINS: &[Toolchain] = &[
    // Python
    with_hello(
        "python",
        &["python3", "python"],
        hello(&[("hello.py", HELLO_PY)], &[&["{bin}", "hello.py"]]),
    ),
    tool("uv", &["uv"]),
    tool("pipx", &["pipx"]),
    tool("pip-audit", &["pip-audit"]),
    with_hello(
        "ruff",
        &["ruff"],
        HelloWorld {
            files: &[("hello.py", HELLO_PY)],
            steps: &[&["{bin}", "check", "--no-cache", "hello.py"]],
            prints_greeting: false,
        },
    ),
    tool("mypy", &["mypy"]),
    tool("pytest", &["pytest"]),
    Toolchain {
        env: &[("SEMGREP_ENABLE_VERSION_CHECK", "0"), ("SEMGREP_SEND_METRICS", "off")],
        ..tool("semgrep", &["semgrep"])
    },
    // JavaScript and TypeScript
    with_hello(
        "node",
        &["node"],
        hello(
            &[("hello.js", "console.log(\"hello from crafting-table\");\n")],
            &[&["{bin}", "hello.js"]],
        ),
    ),
    tool("npm", &["npm"]),
    tool("pnpm", &["pnpm"]),
    with_hello("tsx", &["tsx"], hello(&[("hello.ts", HELLO_TS)], &[&["{bin}", "hello.ts"]])),
    tool("eslint", &["eslint"]),
    with_hello(
        "typescript",
        &["tsc"],
        hello(
            &[("hello.ts", HELLO_TS)],
            &[&["{bin}", "--outDir", "out", "hello.ts"], &["node", "out/hello.js"]],
        ),
    ),
    with_hello("bun", &["bun"], hello(&[("hello.ts", HELLO_TS)], &[&["{bin}", "run", "hello.ts"]])),
    // Go
    Toolchain {
        version_args: &["version"],
        env: &[
            ("GOCACHE", "{dir}/go-build"),
            ("GOPATH", "{dir}/go"),
            ("GOTOOLCHAIN", "local"),
            ("GOFLAGS", ""),
        ],
        ..with_hello(
            "go",
            &["go"],
            HelloWorld {
                files: &[(
                    "hello.go",
                    "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hello from crafting-table\")\n}\n",
                )],
                steps: &[&["{bin}", "build", "-o", "hello", "hello.go"], &["{dir}/hello"]],
                prints_greeting: true,
            },
        )
    },
    Toolchain {
        version_args: &["-version"],
        version_marker: Some("Scanner:"),
        ..tool("govulncheck", &["govulncheck"])
    },
    Toolchain { version_args: &["-version"], ..tool("staticcheck", &["staticcheck"]) },
    // Rust
    with_hello(
        "rust",
        &["rustc"],
        hello(
            &[("hello.rs", "fn main() {\n    println!(\"hello from crafting-table\");\n}\n")],
            &[&["{bin}", "-o", "hello", "hello.rs"], &["{dir}/hello"]],
        ),
    ),
    Toolchain {
        env: &[("CARGO_TARGET_DIR", "{dir}/target")],
        ..with_hello(
            "cargo",
            &["cargo"],
            HelloWorld {
                files: &[
                    (
                        "Cargo.toml",
                        "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
                    ),
                    (
                        "src/main.rs",
                        "fn main() {\n    println!(\"hello from crafting-table\");\n}\n",
                    ),
                ],
                steps: &[&["{bin}", "run", "--offline", "--quiet"]],
                prints_greeting: true,
            },
        )
    },
    tool("clippy", &["cargo-clippy"]),
    tool("rustfmt", &["rustfmt"]),
    // Ruby
    with_hello(
        "ruby",
        &["ruby"],
        hello(&[("hello.rb", "puts \"hello from crafting-table\"\n")], &[&["{bin}", "hello.rb"]]),
    ),
    tool("bundler", &["bundle", "bundler"]),
    Toolchain {
        version_args: &["version"],
        ..tool("bundler-audit", &["bundle-audit", "bundler-audit"])
    },
    tool("rubocop", &["rubocop"]),
    // PHP
    with_hello(
        "php",
        &["php"],
        hello(
            &[("hello.php", "<?php\necho \"hello from crafting-table\\n\";\n")],
            &[&["{bin}", "hello.php"]],
        ),
    ),
    Toolchain {
        version_args: &["--version", "--no-interaction"],
        ..tool("composer", &["composer"])
    },
    tool("phpstan", &["phpstan"]),
    tool("phpunit", &["phpunit"]),
    // JVM
    Toolchain { version_args: &["-version"], ..with_hello("java", &["java"], JAVA_HELLO) },
    Toolchain {
        name: "java21",
        locate: Locate::InEnvDir { var: "JAVA_HOME_21", rel: "bin/java" },
        version_args: &["-version"],
        version_marker: None,
        env: &[],
        hello: Some(JAVA_HELLO),
    },
    Toolchain {
        version_args: &["-B", "--version"],
        ..with_hello(
            "maven",
            &["mvn"],
            hello(
                &[(
                    "pom.xml",
                    "<project xmlns=\"http://maven.apache.org/POM/4.0.0\">\n  <modelVersion>4.0.0</modelVersion>\n  <groupId>example.crafting</groupId>\n  <artifactId>hello</artifactId>\n  <version>1</version>\n  <packaging>pom</packaging>\n  <name>hello from crafting-table</name>\n</project>\n",
                )],
                &[&["{bin}", "-B", "-o", "-Dmaven.repo.local={dir}/m2", "validate"]],
            ),
        )
    },
    with_hello(
        "gradle",
        &["gradle"],
        hello(
            &[
                ("settings.gradle", "rootProject.name = 'hello'\n"),
                (
                    "build.gradle",
                    "tasks.register('hello') {\n    doLast {\n        println 'hello from crafting-table'\n    }\n}\n",
                ),
            ],
            &[&["{bin}", "--offline", "--no-daemon", "--quiet", "hello"]],
        ),
    ),
    Toolchain {
        version_args: &["-version"],
        ..with_hello(
            "kotlin",
            &["kotlinc"],
            hello(
                &[("hello.kt", "fun main() {\n    println(\"hello from crafting-table\")\n}\n")],
                &[
                    &["{bin}", "hello.kt", "-include-runtime", "-d", "hello.jar"],
                    &["java", "-jar", "hello.jar"],
                ],
            ),
        )
    },
    // .NET
    Toolchain {
        env: &[
            ("DOTNET_CLI_TELEMETRY_OPTOUT", "1"),
            ("DOTNET_NOLOGO", "1"),
            ("DOTNET_SKIP_FIRST_TIME_EXPERIENCE", "1"),
            ("DOTNET_CLI_USE_MSBUILD_SERVER", "0"),
            ("MSBUILDDISABLENODEREUSE", "1"),
            ("UseSharedCompilation", "false"),
        ],
        ..with_hello(
            "dotnet",
            &["dotnet"],
            HelloWorld {
                files: &[
                    (
                        "hello.csproj",
                        "<Project Sdk=\"Microsoft.NET.Sdk\">\n  <PropertyGroup>\n    <OutputType>Exe</OutputType>\n    <TargetFramework>net8.0</TargetFramework>\n  </PropertyGroup>\n</Project>\n",
                    ),
                    ("Program.cs", "System.Console.WriteLine(\"hello from crafting-table\");\n"),
                ],
                steps: &[&["{bin}", "run"]],
                prints_greeting: true,
            },
        )
    },
    // Swift
    with_hello(
        "swift",
        &["swift"],
        hello(
            &[("hello.swift", "print(\"hello from crafting-table\")\n")],
            &[&["{bindir}/swiftc", "hello.swift", "-o", "hello"], &["{dir}/hello"]],
        ),
    ),
    // C and C++
    with_hello(
        "c",
        &["cc"],
        hello(&[("hello.c", HELLO_C)], &[&["{bin}", "-o", "hello", "hello.c"], &["{dir}/hello"]]),
    ),
    with_hello(
        "c++",
        &["c++"],
        hello(
            &[(
                "hello.cpp",
                "#include <iostream>\nint main() {\n    std::cout << \"hello from crafting-table\" << std::endl;\n    return 0;\n}\n",
            )],
            &[&["{bin}", "-o", "hello", "hello.cpp"], &["{dir}/hello"]],
        ),
    ),
    with_hello(
        "clang",
        &["clang"],
        hello(&[("hello.c", HELLO_C)], &[&["{bin}", "-o", "hello", "hello.c"], &["{dir}/hello"]]),
    ),
    with_hello(
        "lld",
        &["ld.lld"],
        hello(
            &[("hello.c", HELLO_C)],
            &[&["cc", "-fuse-ld=lld", "-o", "hello", "hello.c"], &["{dir}/hello"]],
        ),
    ),
    with_hello(
        "cmake",
        &["cmake"],
        hello(
            &[
                ("hello.c", HELLO_C),
                (
                    "CMakeLists.txt",
                    "cmake_minimum_required(VERSION 3.16)\nproject(hello C)\nadd_executable(hello hello.c)\n",
                ),
            ],
            &[
                &["{bin}", "-S", ".", "-B", "build"],
                &["{bin}", "--build", "build"],
                &["{dir}/build/hello"],
            ],
        ),
    ),
    tool("ninja", &["ninja"]),
    tool("valgrind", &["valgrind"]),
    // Shell
    with_hello("bash", &["bash"], hello(&[("hello.sh", HELLO_SH)], &[&["{bin}", "hello.sh"]])),
    Toolchain {
        version_marker: Some("version:"),
        ..with_hello(
            "shellcheck",
            &["shellcheck"],
            HelloWorld {
                files: &[("hello.sh", HELLO_SH)],
                steps: &[&["{bin}", "hello.sh"]],
                prints_greeting: false,
            },
        )
    },
    with_hello(
        "bats",
        &["bats"],
        hello(
            &[(
                "hello.bats",
                "@test \"hello from crafting-table\" {\n  run echo hi\n  [ \"$status\" -eq 0 ]\n}\n",
            )],
            &[&["{bin}", "--tap", "hello.bats"]],
        ),
    ),
    with_hello(
        "shfmt",
        &["shfmt"],
        HelloWorld {
            files: &[("hello.sh", HELLO_SH)],
            steps: &[&["{bin}", "-d", "hello.sh"]],
            prints_greeting: false,
        },
    ),
    // Nix
    with_hello(
        "nix",
        &["nix"],
        hello(
            &[],
            &[&["{bindir}/nix-instantiate", "--eval", "--expr", "\"hello from crafting-table\""]],
        ),
    ),
    // Generic command-line tools
    tool("git", &["git"]),
    with_hello("jq", &["jq"], hello(&[], &[&["{bin}", "-n", "\"hello from crafting-table\""]])),
    tool("yq", &["yq"]),
    tool("ripgrep", &["rg"]),
    tool("fd", &["fd", "fdfind"]),
    tool("gh", &["gh"]),
    tool("curl", &["curl"]),
    tool("wget", &["wget"]),
];

/// Looks an entry up in [`TOOLCHAINS`] by name.
pub fn find(name: &str) -> Option<&'static Toolchain> {
    TOOLCHAINS.iter().find(|t| t.name == name)
}

/// What `doctor` found for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolStatus {
    /// Entry name.
    pub name: &'static str,
    /// Version as reported by the tool, when it could be read.
    pub version: Option<String>,
    /// The binary found.
    pub path: Option<PathBuf>,
    /// True when the binary was not found.
    pub missing: bool,
    /// Why the version could not be read, when the binary exists but did not answer.
    pub problem: Option<String>,
}

/// How one entry fared in the smoke test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmokeOutcome {
    /// Its hello-world (or version query) passed.
    Ok {
        /// Version as reported by the tool.
        version: String,
    },
    /// It is present but something went wrong.
    Fail {
        /// One line a person can act on.
        reason: String,
    },
    /// It is not installed here; not a failure.
    Missing,
}

/// One line of the smoke test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmokeResult {
    /// Entry name.
    pub name: &'static str,
    /// What happened.
    pub outcome: SmokeOutcome,
}

impl SmokeResult {
    /// `OK <tool> <version>`, `FAIL <tool>: <reason>` or `MISSING <tool>`.
    pub fn line(&self) -> String {
        match &self.outcome {
            SmokeOutcome::Ok { version } => format!("OK {} {}", self.name, version),
            SmokeOutcome::Fail { reason } => format!("FAIL {}: {}", self.name, reason),
            SmokeOutcome::Missing => format!("MISSING {}", self.name),
        }
    }
}

/// Where to look for binaries: a `PATH`-style list, or the process's own `PATH`.
#[derive(Debug, Clone)]
struct SearchPath {
    dirs: OsString,
    /// Whether children get `dirs` as their `PATH` (only when it was given).
    explicit: bool,
}

impl SearchPath {
    fn new(path_env: Option<&str>) -> SearchPath {
        match path_env {
            Some(p) => SearchPath { dirs: p.into(), explicit: true },
            None => {
                SearchPath { dirs: std::env::var_os("PATH").unwrap_or_default(), explicit: false }
            }
        }
    }

    fn find(&self, name: &str) -> Option<PathBuf> {
        std::env::split_paths(&self.dirs)
            .filter(|d| !d.as_os_str().is_empty())
            .map(|d| d.join(name))
            .find(|p| is_executable(p))
    }
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// Finds an entry's binary.
pub fn locate(tc: &Toolchain, path_env: Option<&str>) -> Option<PathBuf> {
    locate_in(tc, &SearchPath::new(path_env))
}

fn locate_in(tc: &Toolchain, search: &SearchPath) -> Option<PathBuf> {
    match tc.locate {
        Locate::OnPath(names) => names.iter().find_map(|n| search.find(n)),
        Locate::InEnvDir { var, rel } => {
            let dir = std::env::var_os(var).filter(|v| !v.is_empty())?;
            let p = Path::new(&dir).join(rel);
            is_executable(&p).then_some(p)
        }
    }
}

static VERSION_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\d+(?:\.\d+)+").expect("valid version pattern"));

/// Reads a version number (`1.2` or `1.2.3...`) from a tool's output: from
/// the first line containing `marker` when given, else the first match anywhere.
pub fn extract_version(output: &str, marker: Option<&str>) -> Option<String> {
    let text = match marker {
        Some(m) => output.lines().find(|l| l.contains(m))?,
        None => output,
    };
    VERSION_RE.find(text).map(|m| m.as_str().to_owned())
}

/// Finds every entry of [`TOOLCHAINS`] and asks it for its version.
///
/// `path_env` replaces the process's `PATH` for the search (and for the
/// version queries) when given.
pub fn doctor(path_env: Option<&str>) -> Vec<ToolStatus> {
    let search = SearchPath::new(path_env);
    let scratch = scratch_dir();
    let statuses = TOOLCHAINS.iter().map(|tc| probe(tc, &search, &scratch)).collect();
    let _ = fs::remove_dir_all(&scratch);
    statuses
}

/// A fresh private folder under the system temp folder for version queries.
fn scratch_dir() -> PathBuf {
    let base = std::env::temp_dir();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = base.join(format!("crafting-doctor-{}-{nanos}", std::process::id()));
    match fs::create_dir_all(&dir) {
        Ok(()) => dir,
        Err(_) => base,
    }
}

fn probe(tc: &Toolchain, search: &SearchPath, cwd: &Path) -> ToolStatus {
    let Some(path) = locate_in(tc, search) else {
        return ToolStatus {
            name: tc.name,
            version: None,
            path: None,
            missing: true,
            problem: None,
        };
    };
    let (version, problem) = match query_version(tc, &path, search, cwd) {
        Ok(v) => (Some(v), None),
        Err(e) => (None, Some(e)),
    };
    ToolStatus { name: tc.name, version, path: Some(path), missing: false, problem }
}

fn query_version(
    tc: &Toolchain,
    bin: &Path,
    search: &SearchPath,
    cwd: &Path,
) -> Result<String, String> {
    let ctx = Ctx { bin, dir: cwd, search };
    let mut argv = vec![bin.as_os_str().to_owned()];
    argv.extend(tc.version_args.iter().map(OsString::from));
    let out = run(&argv, tc.env, &ctx, VERSION_TIMEOUT, &cwd.join(".crafting-version.out"))?;
    extract_version(&out, tc.version_marker)
        .ok_or_else(|| format!("`{}` printed no version: {}", shown(&argv), last_line(&out)))
}

/// Runs every present entry's hello-world (plain tools: their version
/// query) in a folder of its own under `work_dir`, which is created when
/// needed. A passing entry's folder is removed; a failing one's is kept for
/// inspection and named in the reason.
pub fn smoke(work_dir: &Path) -> Vec<SmokeResult> {
    smoke_with(work_dir, None, None)
}

/// [`smoke`] with a replacement `PATH` and, when `only` is given, just the
/// named entries (unknown names are ignored).
pub fn smoke_with(
    work_dir: &Path,
    path_env: Option<&str>,
    only: Option<&[&str]>,
) -> Vec<SmokeResult> {
    let search = SearchPath::new(path_env);
    TOOLCHAINS
        .iter()
        .filter(|tc| only.is_none_or(|names| names.contains(&tc.name)))
        .map(|tc| SmokeResult { name: tc.name, outcome: smoke_one(tc, work_dir, &search) })
        .collect()
}

fn smoke_one(tc: &Toolchain, work_dir: &Path, search: &SearchPath) -> SmokeOutcome {
    let Some(bin) = locate_in(tc, search) else {
        return SmokeOutcome::Missing;
    };
    let dir = work_dir.join(format!("smoke-{}", tc.name));
    if dir.exists()
        && let Err(e) = fs::remove_dir_all(&dir)
    {
        return SmokeOutcome::Fail { reason: format!("cannot clear {}: {e}", dir.display()) };
    }
    if let Err(e) = fs::create_dir_all(&dir) {
        return SmokeOutcome::Fail { reason: format!("cannot create {}: {e}", dir.display()) };
    }
    let outcome = match smoke_in(tc, &bin, &dir, search) {
        Ok(version) => SmokeOutcome::Ok { version },
        Err(reason) => {
            SmokeOutcome::Fail { reason: format!("{reason} (files kept in {})", dir.display()) }
        }
    };
    if matches!(outcome, SmokeOutcome::Ok { .. }) {
        let _ = fs::remove_dir_all(&dir);
    }
    outcome
}

fn smoke_in(tc: &Toolchain, bin: &Path, dir: &Path, search: &SearchPath) -> Result<String, String> {
    let version = query_version(tc, bin, search, dir)?;
    let Some(hello) = tc.hello else {
        return Ok(version);
    };
    for (rel, contents) in hello.files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        fs::write(&path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let ctx = Ctx { bin, dir, search };
    let mut last = String::new();
    for (i, step) in hello.steps.iter().enumerate() {
        let argv = ctx.argv(step)?;
        last = run(&argv, tc.env, &ctx, STEP_TIMEOUT, &dir.join(format!(".step-{i}.out")))?;
    }
    if hello.prints_greeting && !last.contains(GREETING) {
        return Err(format!("hello-world did not print {GREETING:?}: {}", last_line(&last)));
    }
    Ok(version)
}

/// What placeholders stand for.
struct Ctx<'a> {
    bin: &'a Path,
    dir: &'a Path,
    search: &'a SearchPath,
}

impl Ctx<'_> {
    fn expand(&self, s: &str) -> OsString {
        let bindir = self.bin.parent().unwrap_or(Path::new("/"));
        s.replace("{bindir}", &bindir.to_string_lossy())
            .replace("{bin}", &self.bin.to_string_lossy())
            .replace("{dir}", &self.dir.to_string_lossy())
            .into()
    }

    fn argv(&self, step: &[&str]) -> Result<Vec<OsString>, String> {
        let (first, rest) = step.split_first().ok_or("empty step in the table")?;
        let program = if first.contains('{') || first.contains('/') {
            self.expand(first)
        } else {
            self.search
                .find(first)
                .ok_or_else(|| format!("{first} is needed for the hello-world but was not found"))?
                .into_os_string()
        };
        let mut argv = vec![program];
        argv.extend(rest.iter().map(|a| self.expand(a)));
        Ok(argv)
    }
}

/// Runs one command in `ctx.dir` in a process group of its own, stdout and
/// stderr into `out_file`; returns the output when it exits 0 in time. The
/// whole group is killed afterwards, so helpers a tool leaves behind
/// (compiler servers, daemons that stay in the group) do not linger.
fn run(
    argv: &[OsString],
    env: &[(&str, &str)],
    ctx: &Ctx<'_>,
    timeout: Duration,
    out_file: &Path,
) -> Result<String, String> {
    let out =
        File::create(out_file).map_err(|e| format!("cannot create {}: {e}", out_file.display()))?;
    let err = out.try_clone().map_err(|e| format!("cannot share the output file: {e}"))?;
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(ctx.dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    if ctx.search.explicit {
        cmd.env("PATH", &ctx.search.dirs);
    }
    for (k, v) in env {
        cmd.env(k, ctx.expand(v));
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot start `{}`: {e}", shown(argv)))?;
    let pgid = child.id() as i32;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if started.elapsed() >= timeout => {
                kill_group(pgid);
                let _ = child.wait();
                break Err(format!("`{}` took longer than {} s", shown(argv), timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                kill_group(pgid);
                let _ = child.wait();
                break Err(format!("cannot wait for `{}`: {e}", shown(argv)));
            }
        }
    };
    kill_group(pgid);
    let text =
        fs::read(out_file).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let _ = fs::remove_file(out_file);
    let status = status?;
    if status.success() {
        Ok(text)
    } else {
        let code = status.code().map_or_else(|| "a signal".to_owned(), |c| c.to_string());
        Err(format!("`{}` exited with {code}: {}", shown(argv), last_line(&text)))
    }
}

fn kill_group(pgid: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) has no memory-safety preconditions; a group that is
        // already gone answers ESRCH, which is ignored.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

fn shown(argv: &[OsString]) -> String {
    argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
}

/// The last non-blank line of a tool's output, shortened to fit one report line.
fn last_line(text: &str) -> String {
    let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty()).unwrap_or("(no output)");
    if line.chars().count() > 160 {
        format!("{}...", line.chars().take(160).collect::<String>())
    } else {
        line.to_owned()
    }
}

/// The `doctor` report: one row per entry with its version and path, or
/// `missing`.
pub fn render_table(statuses: &[ToolStatus]) -> String {
    let rows: Vec<[String; 3]> = statuses
        .iter()
        .map(|s| {
            let version = match (&s.version, s.missing) {
                (Some(v), _) => v.clone(),
                (None, true) => "-".to_owned(),
                (None, false) => "?".to_owned(),
            };
            let place = match (&s.path, &s.problem) {
                (None, _) => "missing".to_owned(),
                (Some(p), None) => p.display().to_string(),
                (Some(p), Some(problem)) => format!("{} ({problem})", p.display()),
            };
            [s.name.to_owned(), version, place]
        })
        .collect();
    let header = ["TOOLCHAIN", "VERSION", "PATH"];
    let w0 = rows.iter().map(|r| r[0].len()).chain([header[0].len()]).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r[1].len()).chain([header[1].len()]).max().unwrap_or(0);
    let mut out = String::new();
    for r in std::iter::once(header.map(str::to_owned)).chain(rows) {
        out.push_str(&format!("{:<w0$}  {:<w1$}  {}\n", r[0], r[1], r[2]));
    }
    let present = statuses.iter().filter(|s| !s.missing).count();
    out.push_str(&format!("{present} of {} present\n", statuses.len()));
    out
}

/// The smoke report: one line per entry, then [`ALL_GREEN`] when every entry
/// passed and none was missing, else a count line.
pub fn render_smoke(results: &[SmokeResult]) -> String {
    let mut out: String = results.iter().map(|r| r.line() + "\n").collect();
    let count = |f: fn(&SmokeOutcome) -> bool| results.iter().filter(|r| f(&r.outcome)).count();
    let ok = count(|o| matches!(o, SmokeOutcome::Ok { .. }));
    let failed = count(|o| matches!(o, SmokeOutcome::Fail { .. }));
    let missing = count(|o| matches!(o, SmokeOutcome::Missing));
    if failed == 0 && missing == 0 && ok > 0 {
        out.push_str(ALL_GREEN);
        out.push('\n');
    } else {
        out.push_str(&format!("=== smoke: {ok} ok, {failed} failing, {missing} missing ===\n"));
    }
    out
}

/// True when no entry failed (missing entries do not count against it).
pub fn smoke_passed(results: &[SmokeResult]) -> bool {
    !results.iter().any(|r| matches!(r.outcome, SmokeOutcome::Fail { .. }))
}

/// The names of [`TOOLCHAINS`], in order.
pub fn names() -> impl Iterator<Item = &'static str> {
    TOOLCHAINS.iter().map(|t| t.name)
}
