#!/usr/bin/env bash
# The hot path of two commits side by side: instructions per CLIENT LIST line under callgrind
# (repeatable on a busy machine, unlike wall time), and criterion's wall times of the parse and
# diagnosis benches. Both commits are built in one target directory, so the dependencies are
# compiled once.
#
#   bash benches/commits.sh BEFORE [AFTER]     (AFTER defaults to the working tree)
#
# Prints one line per measurement: `commit  measurement  value`.
set -euo pipefail
cd "$(dirname "$0")/.."
before=${1:?usage: benches/commits.sh BEFORE [AFTER]}
after=${2:-}
target=${CARGO_TARGET_DIR:-$PWD/target/commits}
export CARGO_TARGET_DIR=$target
tree=$(mktemp -d)
trap 'git worktree remove --force "$tree" >/dev/null 2>&1 || rm -rf "$tree"' EXIT

# Builds the benches of the source at $1 and prints the client_list and diagnose binaries.
build() {
    (cd "$1" && cargo bench --no-run --bench client_list --bench diagnose 2>&1) |
        grep -oE '\(([^)]*/deps/(client_list|diagnose)-[0-9a-f]+)\)' | tr -d '()'
}

measure() {
    local name=$1 src=$2 bins cl dg
    bins=$(build "$src")
    cl=$(grep '/client_list-' <<<"$bins")
    dg=$(grep '/diagnose-' <<<"$bins")
    for which in parse_only parse_aggregate; do
        local out lines instr
        out=$(HOT_PATH=$which HOT_PATH_ITERS=3 valgrind --tool=callgrind \
            --callgrind-out-file="$tree.cg" --toggle-collect='client_list::hot_*' "$cl" 2>&1)
        lines=$(grep -oE '[0-9]+ lines through' <<<"$out" | grep -oE '^[0-9]+')
        instr=$(grep -oE 'Collected : [0-9]+' <<<"$out" | grep -oE '[0-9]+$')
        echo "$name  instructions_per_line/$which  $((instr / lines))"
    done
    # `--bench`: without it criterion runs each benchmark once as a test.
    "$cl" --bench --warm-up-time 1 --measurement-time 5 'synthetic_50k' 2>/dev/null |
        awk -v n="$name" '/^[a-z_\/0-9]+/{b=$1} /time:/{print n"  "b"  "$0}'
    "$dg" --bench --warm-up-time 1 --measurement-time 5 2>/dev/null |
        awk -v n="$name" '/^[a-z_\/0-9]+/{b=$1} /time:/{print n"  "b"  "$0}'
}

git worktree add --detach "$tree" "$before" >/dev/null
measure "$before" "$tree"
if [ -n "$after" ]; then
    git -C "$tree" checkout -q --detach "$after"
    measure "$after" "$tree"
else
    measure "working-tree" "$PWD"
fi
