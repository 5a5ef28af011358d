#!/usr/bin/env bash
# Downloads a file and refuses it unless its digest matches. Used by the
# Dockerfile for every download that does not come through a package manager.
#
#   fetch-verified.sh URL DEST ALGO EXPECTED [ARG_NAME]
#
# ALGO      sha256 or sha512
# EXPECTED  the hex digest, or `file:<url>` to read it from the publisher's
#           checksum file next to the download (either a bare digest, or
#           `<digest>  <file name>` lines, of which the one naming the
#           download is used)
# ARG_NAME  the build ARG that holds EXPECTED, named in the error when the
#           digest is still a placeholder
set -euo pipefail

if (($# < 4)); then
    echo "usage: fetch-verified.sh URL DEST sha256|sha512 DIGEST|file:URL [ARG_NAME]" >&2
    exit 2
fi
url=$1
dest=$2
algo=$3
expected=$4
arg_name=${5:-the checksum build argument}

case $algo in
sha256) hex_len=64 ;;
sha512) hex_len=128 ;;
*)
    echo "fetch-verified: unknown algorithm '$algo' (use sha256 or sha512)" >&2
    exit 2
    ;;
esac

fetch() {
    curl --fail --silent --show-error --location --proto '=https' --tlsv1.2 \
        --retry 3 --retry-delay 2 "$@"
}

if [[ $expected == file:* ]]; then
    sums=$(fetch "${expected#file:}")
    name=${url##*/}
    line=$(grep -F -- "$name" <<<"$sums" | head -n 1 || true)
    if [[ -z $line ]]; then
        line=$(head -n 1 <<<"$sums")
    fi
    expected=${line%%[[:space:]]*}
fi

expected=${expected,,}
if [[ ! $expected =~ ^[0-9a-f]{$hex_len}$ ]]; then
    echo "fetch-verified: no usable $algo digest for $url" >&2
    echo "fetch-verified: set $arg_name to the publisher's $algo of that file" >&2
    echo "fetch-verified: (got '$expected')" >&2
    exit 1
fi

fetch --output "$dest" "$url"
if ! printf '%s  %s\n' "$expected" "$dest" | "${algo}sum" --check --status -; then
    echo "fetch-verified: $algo mismatch for $url" >&2
    echo "fetch-verified: expected $expected" >&2
    echo "fetch-verified: got      $("${algo}sum" "$dest" | cut -d ' ' -f 1)" >&2
    rm -f "$dest"
    exit 1
fi
echo "fetch-verified: $url ($algo ok)"
