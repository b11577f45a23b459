#!/usr/bin/env bash
# POX for the POX tests (scripts/setup.sh --test runs this). POX is not on PyPI or in
# Debian: clone the commit the tests pass with into .pox (gitignored), the last place
# tests/find_pox.py looks. Nothing to do when an earlier place has POX: LABCTL_POX_PATH,
# or the vendored tarball beside the repository.
# Where GitHub cannot be reached this says so in one line and exits 0: the POX tests
# then skip, and setup goes on. It never waits for a password or a stalled network.
set -euo pipefail
cd "$(dirname "$0")/.."

url=https://github.com/noxrepo/pox
branch=gar-experimental  # POX 0.7.0
commit=5f82461e01f8822bd7336603b361bff4ffbd2380
dest=.pox
partial=.pox.partial  # becomes $dest only once it is at $commit
limit_s=120

if [ -n "${LABCTL_POX_PATH:-}" ] || [ -f ../shared/vendor/pox.tar.gz ]; then
    exit 0
fi
if [ "$(git --git-dir="$dest/.git" rev-parse HEAD 2>/dev/null)" = "$commit" ]; then
    exit 0
fi

skip() {
    rm -rf "$partial"
    echo "setup: no POX for the tests ($1); the POX tests will skip." \
         "To run them, set LABCTL_POX_PATH to a POX checkout (git clone $url)." >&2
    exit 0
}

command -v git >/dev/null || skip "git is not installed"
rm -rf "$partial"
export GIT_TERMINAL_PROMPT=0  # no credential prompt: a public repository needs none
# `timeout` bounds a connection that is never answered; the low-speed limit, a stalled one.
status=0
out=$(timeout -k 5 "$limit_s" git -c http.lowSpeedLimit=1000 -c http.lowSpeedTime=20 \
          clone -q --single-branch --branch "$branch" "$url" "$partial" 2>&1 </dev/null) || status=$?
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
    skip "cloning $url took longer than $limit_s s"
elif [ "$status" != 0 ]; then
    skip "$(printf '%s\n' "$out" | grep . | tail -n 1 | sed 's/^fatal: //')"
fi
git -C "$partial" -c advice.detachedHead=false checkout -q "$commit" 2>/dev/null </dev/null \
    || skip "commit $commit is not on $url branch $branch"
head=$(git -C "$partial" rev-parse HEAD)
[ "$head" = "$commit" ] || skip "$partial is at $head, not $commit"
rm -rf "$dest"
mv "$partial" "$dest"
echo "setup: POX $commit ($branch) in $dest, for the POX tests"
