#!/usr/bin/env bash
# Toolchain smoke test of the image: for every toolchain, ask for its version,
# then write a hello-world into a fresh folder and compile and run it (plain
# tools: run them on a tiny input, or just ask for the version). One line each:
#
#   OK <tool> <version>
#   FAIL <tool>: <reason>
#
# and `=== ALL TOOLCHAINS GREEN ===` when all of them passed. Exit status 1
# when any failed. In the image every toolchain must be present, so a missing
# one is a failure here (`crafting-table doctor --smoke`, which runs the same
# checks from crafting-core/src/toolchains.rs, reports missing ones apart
# instead, for machines that carry only some toolchains).
#
# SMOKE_ONLY="rust python c"   checks only the named toolchains.
# SMOKE_STEP_TIMEOUT=300       seconds one step may take.
set -uo pipefail

GREETING="hello from crafting-table"
STEP_TIMEOUT=${SMOKE_STEP_TIMEOUT:-300}
export GREETING

# Quiet, offline-friendly behaviour for tools that phone home or keep servers.
export SEMGREP_ENABLE_VERSION_CHECK=0 SEMGREP_SEND_METRICS=off
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
export DOTNET_CLI_USE_MSBUILD_SERVER=0 MSBUILDDISABLENODEREUSE=1 UseSharedCompilation=false

work=$(mktemp -d "${TMPDIR:-/tmp}/crafting-smoke.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

failed=0
passed=0

fail() {
    printf 'FAIL %s: %s\n' "$1" "$2"
    failed=$((failed + 1))
}

# The last non-blank line of $1, cut to 160 characters.
last_line() {
    local line
    line=$(printf '%s\n' "$1" | sed '/^[[:space:]]*$/d' | tail -n 1)
    printf '%s' "${line:0:160}"
}

# The first version number in $1, or in its first line containing $2.
version_of() {
    local text=$1
    if [[ -n ${2:-} ]]; then
        text=$(grep -F -- "$2" <<<"$text" | head -n 1)
    fi
    grep -oE '[0-9]+(\.[0-9]+)+' <<<"$text" | head -n 1
}

wanted() {
    [[ -z ${SMOKE_ONLY:-} || " $SMOKE_ONLY " == *" $1 "* ]]
}

# smoke NAME BODY MARKER COMMAND [ARGS...]
#   NAME     toolchain name (as in the README matrix and `crafting-table doctor`)
#   BODY     hello_* function: must print the greeting; quiet_* function: must
#            exit 0; `-`: the version query alone
#   MARKER   read the version from the first output line containing it; `-` for none
#   COMMAND  binary and arguments that print the version; `a|b` tries a, then b
smoke() {
    local name=$1 body=$2 marker=$3 spec=$4
    shift 4
    wanted "$name" || return 0
    local bin="" candidate
    local IFS_save=$IFS
    IFS='|'
    for candidate in $spec; do
        if bin=$(command -v "$candidate" 2>/dev/null); then
            break
        fi
        bin=""
    done
    IFS=$IFS_save
    if [[ -z $bin ]]; then
        fail "$name" "not installed (looked for ${spec//|/ or })"
        return 0
    fi
    local dir=$work/$name out version
    mkdir -p "$dir"
    if ! out=$(cd "$dir" && timeout "$STEP_TIMEOUT" "$bin" "$@" 2>&1 </dev/null); then
        fail "$name" "'$bin $*' failed: $(last_line "$out")"
        return 0
    fi
    [[ $marker == - ]] && marker=""
    version=$(version_of "$out" "$marker")
    if [[ -z $version ]]; then
        fail "$name" "'$bin $*' printed no version: $(last_line "$out")"
        return 0
    fi
    if [[ $body != - ]]; then
        if ! out=$(cd "$dir" && BIN=$bin BINDIR=${bin%/*} timeout "$STEP_TIMEOUT" bash -c "$body" 2>&1 </dev/null); then
            fail "$name" "hello-world failed: $(last_line "$out")"
            return 0
        fi
        if [[ $body == hello_* && $out != *"$GREETING"* ]]; then
            fail "$name" "hello-world did not print the greeting: $(last_line "$out")"
            return 0
        fi
    fi
    rm -rf "$dir"
    printf 'OK %s %s\n' "$name" "$version"
    passed=$((passed + 1))
}

# --- hello-worlds: each runs in an empty folder; $BIN is the located binary --

c_source() {
    printf '%s\n' '#include <stdio.h>' 'int main(void) {' \
        '    puts("hello from crafting-table");' '    return 0;' '}' >hello.c
}
py_source() { printf '%s\n' 'print("hello from crafting-table")' >hello.py; }
sh_source() { printf '%s\n' '#!/bin/sh' 'echo "hello from crafting-table"' >hello.sh; }
ts_source() {
    printf '%s\n' 'const greeting: string = "hello from crafting-table";' \
        'console.log(greeting);' >hello.ts
}

hello_python() { py_source && "$BIN" hello.py; }
quiet_ruff() { py_source && "$BIN" check --no-cache hello.py; }
hello_node() { printf '%s\n' 'console.log("hello from crafting-table");' >hello.js && "$BIN" hello.js; }
hello_tsx() { ts_source && "$BIN" hello.ts; }
hello_typescript() { ts_source && "$BIN" --outDir out hello.ts && node out/hello.js; }
hello_bun() { ts_source && "$BIN" run hello.ts; }
hello_go() {
    printf '%s\n' 'package main' '' 'import "fmt"' '' 'func main() {' \
        '	fmt.Println("hello from crafting-table")' '}' >hello.go &&
        GOCACHE=$PWD/go-build GOPATH=$PWD/go GOTOOLCHAIN=local GOFLAGS='' \
            "$BIN" build -o hello hello.go && ./hello
}
hello_rust() {
    printf '%s\n' 'fn main() {' '    println!("hello from crafting-table");' '}' >hello.rs &&
        "$BIN" -o hello hello.rs && ./hello
}
hello_cargo() {
    mkdir -p src &&
        printf '%s\n' '[package]' 'name = "hello"' 'version = "0.1.0"' 'edition = "2021"' '' \
            '[workspace]' >Cargo.toml &&
        printf '%s\n' 'fn main() {' '    println!("hello from crafting-table");' '}' >src/main.rs &&
        CARGO_TARGET_DIR=$PWD/target "$BIN" run --offline --quiet
}
hello_ruby() { printf '%s\n' 'puts "hello from crafting-table"' >hello.rb && "$BIN" hello.rb; }
hello_php() { printf '%s\n' '<?php' 'echo "hello from crafting-table\n";' >hello.php && "$BIN" hello.php; }
hello_java() {
    printf '%s\n' 'public class Hello {' '    public static void main(String[] args) {' \
        '        System.out.println("hello from crafting-table");' '    }' '}' >Hello.java &&
        "$BINDIR/javac" -d . Hello.java && "$BIN" -cp . Hello
}
hello_maven() {
    printf '%s\n' '<project xmlns="http://maven.apache.org/POM/4.0.0">' \
        '  <modelVersion>4.0.0</modelVersion>' '  <groupId>example.crafting</groupId>' \
        '  <artifactId>hello</artifactId>' '  <version>1</version>' '  <packaging>pom</packaging>' \
        '  <name>hello from crafting-table</name>' '</project>' >pom.xml &&
        "$BIN" -B -o "-Dmaven.repo.local=$PWD/m2" validate
}
hello_gradle() {
    printf '%s\n' "rootProject.name = 'hello'" >settings.gradle &&
        printf '%s\n' "tasks.register('hello') {" '    doLast {' \
            "        println 'hello from crafting-table'" '    }' '}' >build.gradle &&
        "$BIN" --offline --no-daemon --quiet hello
}
hello_kotlin() {
    printf '%s\n' 'fun main() {' '    println("hello from crafting-table")' '}' >hello.kt &&
        "$BIN" hello.kt -include-runtime -d hello.jar && java -jar hello.jar
}
hello_dotnet() {
    printf '%s\n' '<Project Sdk="Microsoft.NET.Sdk">' '  <PropertyGroup>' \
        '    <OutputType>Exe</OutputType>' '    <TargetFramework>net8.0</TargetFramework>' \
        '  </PropertyGroup>' '</Project>' >hello.csproj &&
        printf '%s\n' 'System.Console.WriteLine("hello from crafting-table");' >Program.cs &&
        "$BIN" run
}
hello_swift() {
    printf '%s\n' 'print("hello from crafting-table")' >hello.swift &&
        "$BINDIR/swiftc" hello.swift -o hello && ./hello
}
hello_c() { c_source && "$BIN" -o hello hello.c && ./hello; }
hello_cxx() {
    printf '%s\n' '#include <iostream>' 'int main() {' \
        '    std::cout << "hello from crafting-table" << std::endl;' '    return 0;' '}' >hello.cpp &&
        "$BIN" -o hello hello.cpp && ./hello
}
hello_lld() { c_source && cc -fuse-ld=lld -o hello hello.c && ./hello; }
hello_cmake() {
    c_source &&
        printf '%s\n' 'cmake_minimum_required(VERSION 3.16)' 'project(hello C)' \
            'add_executable(hello hello.c)' >CMakeLists.txt &&
        "$BIN" -S . -B build && "$BIN" --build build && ./build/hello
}
hello_bash() { sh_source && "$BIN" hello.sh; }
quiet_shellcheck() { sh_source && "$BIN" hello.sh; }
hello_bats() {
    # $status is bats' own variable, written into the test file as it is.
    # shellcheck disable=SC2016
    printf '%s\n' '@test "hello from crafting-table" {' '  run echo hi' '  [ "$status" -eq 0 ]' '}' \
        >hello.bats && "$BIN" --tap hello.bats
}
quiet_shfmt() { sh_source && "$BIN" -d hello.sh; }
hello_nix() { "$BINDIR/nix-instantiate" --eval --expr '"hello from crafting-table"'; }
hello_jq() { "$BIN" -n '"hello from crafting-table"'; }

# Each body runs in a child bash, which sees these through the environment.
export -f c_source py_source sh_source ts_source
export -f hello_python quiet_ruff hello_node hello_tsx hello_typescript hello_bun hello_go \
    hello_rust hello_cargo hello_ruby hello_php hello_java hello_maven hello_gradle hello_kotlin \
    hello_dotnet hello_swift hello_c hello_cxx hello_lld hello_cmake hello_bash quiet_shellcheck \
    hello_bats quiet_shfmt hello_nix hello_jq

# --- the matrix: same names and order as crafting-core/src/toolchains.rs -----

# Python
smoke python hello_python - 'python3|python' --version
smoke uv - - uv --version
smoke pipx - - pipx --version
smoke pip-audit - - pip-audit --version
smoke ruff quiet_ruff - ruff --version
smoke mypy - - mypy --version
smoke pytest - - pytest --version
smoke semgrep - - semgrep --version
# JavaScript and TypeScript
smoke node hello_node - node --version
smoke npm - - npm --version
smoke pnpm - - pnpm --version
smoke tsx hello_tsx - tsx --version
smoke eslint - - eslint --version
smoke typescript hello_typescript - tsc --version
smoke bun hello_bun - bun --version
# Go
smoke go hello_go - go version
smoke govulncheck - Scanner: govulncheck -version
smoke staticcheck - - staticcheck -version
# Rust
smoke rust hello_rust - rustc --version
smoke cargo hello_cargo - cargo --version
smoke clippy - - cargo-clippy --version
smoke rustfmt - - rustfmt --version
# Ruby
smoke ruby hello_ruby - ruby --version
smoke bundler - - 'bundle|bundler' --version
smoke bundler-audit - - 'bundle-audit|bundler-audit' version
smoke rubocop - - rubocop --version
# PHP
smoke php hello_php - php --version
smoke composer - - composer --version --no-interaction
smoke phpstan - - phpstan --version
smoke phpunit - - phpunit --version
# JVM
smoke java hello_java - java -version
if [[ -n ${JAVA_HOME_21:-} ]]; then
    smoke java21 hello_java - "$JAVA_HOME_21/bin/java" -version
elif wanted java21; then
    fail java21 "JAVA_HOME_21 is not set"
fi
smoke maven hello_maven - mvn -B --version
smoke gradle hello_gradle - gradle --version
smoke kotlin hello_kotlin - kotlinc -version
# .NET
smoke dotnet hello_dotnet - dotnet --version
# Swift
smoke swift hello_swift - swift --version
# C and C++
smoke c hello_c - cc --version
smoke c++ hello_cxx - c++ --version
smoke clang hello_c - clang --version
smoke lld hello_lld - ld.lld --version
smoke cmake hello_cmake - cmake --version
smoke ninja - - ninja --version
smoke valgrind - - valgrind --version
# Shell
smoke bash hello_bash - bash --version
smoke shellcheck quiet_shellcheck version: shellcheck --version
smoke bats hello_bats - bats --version
smoke shfmt quiet_shfmt - shfmt --version
# Nix
smoke nix hello_nix - nix --version
# Generic command-line tools
smoke git - - git --version
smoke jq hello_jq - jq --version
smoke yq - - yq --version
smoke ripgrep - - rg --version
smoke fd - - 'fd|fdfind' --version
smoke gh - - gh --version
smoke curl - - curl --version
smoke wget - - wget --version

if ((failed > 0)); then
    printf '=== %d toolchains failed, %d passed ===\n' "$failed" "$passed"
    exit 1
fi
if ((passed == 0)); then
    printf '=== no toolchain was checked (SMOKE_ONLY=%s) ===\n' "${SMOKE_ONLY:-}"
    exit 1
fi
printf '%s\n' '=== ALL TOOLCHAINS GREEN ==='
