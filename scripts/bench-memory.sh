#!/usr/bin/env bash
# bench-memory.sh: the memory of an idle Postroom, all processes together.
#
# Needs: cargo and what scripts/build-firmware.sh needs for x86_64 (rustup's
# x86_64-unknown-linux-musl target, gcc), awk, ss. Root is not needed.
#
# Usage: scripts/bench-memory.sh [SETTLE_SECONDS]
#   Starts `postroom run` with examples/dev.toml (its users, aliases and link simulator) moved
#   to a temp dir with fresh ports, waits until SMTP and IMAP answer and then SETTLE_SECONDS
#   (default 10), and prints, per process of the supervisor's tree and summed: VmRSS (what the
#   goal of 16 MiB is stated in), Pss (shared pages divided between the processes that map
#   them: the supervisor, mail and link are one binary, so summed VmRSS counts its text more
#   than once), RssAnon/RssFile and the thread count. It samples 10 times, 0.5 s apart, and
#   prints the highest sum.
#   It measures the binary the firmware ships: the static x86_64 musl release build, built now
#   by scripts/build-firmware.sh (a glibc build maps libc, libm, ld.so and libgcc_s as well,
#   and is larger: see docs/PERFORMANCE.md "Memory").
# Environment: POSTROOM_BIN=... (measure that binary instead, no build), TARGET=... (build for
#   that target instead of x86_64-unknown-linux-musl; where rustup's musl target is missing,
#   TARGET=x86_64-unknown-linux-gnu RUSTFLAGS='-C target-feature=+crt-static' gives a static
#   glibc binary, the nearest stand-in), KEEP=1 (keep the temp dir), BENCH_TMP=DIR.
#
# Every process this script starts is stopped on exit, also on failure or Ctrl-C.
set -euo pipefail

SETTLE=${1:-10}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench-lib.sh
. "$ROOT/scripts/bench-lib.sh"
need_program awk
need_program ss

WORK=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/postroom-bench-memory.XXXXXX")
cleanup() {
    local status=$?
    set +e
    trap - ERR
    stop_postroom
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'echo "$0: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

if [ -z "${POSTROOM_BIN:-}" ]; then
    TARGET=${TARGET:-x86_64-unknown-linux-musl}
    "$ROOT/scripts/build-firmware.sh" "$TARGET" >&2
    POSTROOM_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/firmware/$TARGET/postroom"
fi
[ -x "$POSTROOM_BIN" ] || {
    echo "$0: no binary at $POSTROOM_BIN" >&2
    exit 2
}
# Start from a cold page cache for the binary, as at boot: how its pages got into the cache
# (written by the linker or cp, read by an earlier run) decides the size of the page-cache
# folios the kernel maps per fault, which moved the sum by up to 1.4 MiB between runs of the
# same binary. Only this file's pages are dropped (written back first: a freshly built binary's
# pages are dirty and would stay), and only when nothing maps it.
sync "$POSTROOM_BIN"
dd if="$POSTROOM_BIN" iflag=nocache count=0 status=none 2>/dev/null || true
write_postroom_config "$WORK/postroom" "$(free_port)" 10
start_postroom "$WORK/postroom"
wait_for_port "$PR_PORT_imap" 30 || {
    echo "postroom's IMAP port did not open" >&2
    exit 1
}
sleep "$SETTLE"

# One line per process of the tree: pid name VmRSS Pss RssAnon RssFile threads (KiB).
snapshot() {
    local pid
    for pid in $(tree_pids "$POSTROOM_PID"); do
        {
            cat "/proc/$pid/status"
            grep '^Pss:' "/proc/$pid/smaps_rollup" 2>/dev/null || echo "Pss: 0 kB"
        } 2>/dev/null | awk '
            /^Pid:/ { p = $2 } /^VmRSS:/ { r = $2 } /^Pss:/ { s = $2 }
            /^RssAnon:/ { a = $2 } /^RssFile:/ { f = $2 } /^Threads:/ { t = $2 }
            END { if (p) printf "%s %s %d %d %d %d %d\n", p, n, r, s, a, f, t }' \
                n="$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | sed -n 2p)"
    done
}

best=0
best_snapshot=
for i in $(seq 1 10); do
    snap=$(snapshot)
    sum=$(awk '{ s += $3 } END { print s + 0 }' <<<"$snap")
    if [ "$sum" -gt "$best" ]; then
        best=$sum
        best_snapshot=$snap
    fi
    sleep 0.5
done

echo "binary: $POSTROOM_BIN, $(stat -c %s "$POSTROOM_BIN") bytes;" \
    "$(file -b "$POSTROOM_BIN" 2>/dev/null | cut -d, -f1-4 || echo '(file(1) not installed)')"
echo "idle Postroom (dev config, ${SETTLE}s after start, load $(cut -d' ' -f1-3 /proc/loadavg)):"
printf '%8s %-16s %10s %10s %10s %10s %8s\n' pid process VmRSS Pss RssAnon RssFile threads
sort -k2 <<<"$best_snapshot" | awk '{
    printf "%8s %-16s %6d KiB %6d KiB %6d KiB %6d KiB %8d\n", $1, $2, $3, $4, $5, $6, $7
    r += $3; s += $4; a += $5; f += $6; t += $7
} END {
    printf "%8s %-16s %6d KiB %6d KiB %6d KiB %6d KiB %8d\n", "", "sum", r, s, a, f, t
    printf "summed VmRSS %.1f MiB, summed Pss %.1f MiB (goal: 16 MiB or less)\n", r / 1024, s / 1024
}'
