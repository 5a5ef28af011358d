#!/usr/bin/env bash
# Container entry point: makes the four volumes usable by `crafter`, creates
# the per-tool cache folders, puts the Nix store in place on first start,
# then runs the command (by default `crafting-table serve`).
#
# Bind mounts that Docker creates on the host are owned by root; the top
# folder of each volume is handed to `crafter` (not recursively, so a large
# cache does not slow every start).
set -euo pipefail

me="$(id -u):$(id -g)"
for dir in /data /workspace /caches /nix; do
    if [[ ! -d $dir ]]; then
        sudo -n install -d -o "${me%%:*}" -g "${me##*:}" "$dir"
    elif [[ ! -w $dir ]]; then
        sudo -n chown "$me" "$dir"
    fi
done

# Every cache the image's configuration points at (environment, ~/.m2,
# ~/.gradle, ~/.cache, ~/.bundle, ~/.nuget, /opt/cargo/{registry,git}).
mkdir -p \
    /caches/cargo/registry /caches/cargo/git /caches/cargo/bin \
    /caches/maven /caches/gradle /caches/npm /caches/pip /caches/uv /caches/bun \
    /caches/go-build /caches/go-mod /caches/nuget /caches/bundle /caches/composer \
    /caches/xdg

# The image keeps the Nix store as an archive, so that an empty bind mount on
# /nix gets the store too (a named volume would, a bind mount would not).
if [[ ! -d /nix/store && -f /opt/nix-seed.tar ]]; then
    echo "crafting-entrypoint: first start, unpacking the Nix store into /nix" >&2
    tar -C / -xf /opt/nix-seed.tar
fi

if (($# == 0)); then
    set -- crafting-table serve
fi
exec "$@"
