#!/usr/bin/env bash
# bench-smtp.sh: Postroom against Postfix, SMTP in, Maildir out, on this machine, taking turns.
#
# Needs: root (Postfix's master starts as root); postfix with smtp-source (/usr/sbin/smtp-source,
# from the Debian postfix package); cargo (builds `postroom` in release); awk, ss, find; strace
# or perf only with STRACE=1 or PERF=1.
#
# Usage: scripts/bench-smtp.sh [SESSIONS] [MESSAGES] [SIZE]
#   SESSIONS  parallel SMTP sessions of smtp-source (default 20)
#   MESSAGES  messages per run (default 2000)
#   SIZE      message payload in bytes, or with a k suffix (default 5k = 5120 bytes)
# Environment:
#   ROUNDS=3          runs per side; the sides take turns (P=Postfix, R=Postroom: PR RP PR ...)
#   POSTROOM_BIN=...  use this binary instead of building one (`cargo build --release`)
#   KEEP=1            keep the temp directory (configs, logs, Maildirs) for a look afterwards
#   STRACE=1          count system calls with `strace -c -f` attached to each side's process
#                     tree during its runs, and print fsync/fdatasync/rename/... per message
#                     (strace slows both sides a lot: the rates of such a run mean nothing)
#   PERF=1            sample each side's process tree with `perf record -e cpu-clock -g` during
#                     its runs and print the top of `perf report` (for names, point
#                     POSTROOM_BIN at a build with symbols: CARGO_PROFILE_RELEASE_STRIP=false)
#   BENCH_TMP=DIR     where the temp directory goes (default $TMPDIR or /tmp); both sides'
#                     queues and Maildirs are under it, so on the same file system
#
# Both sides: one recipient (alice@office.example, a local user), a new connection per message
# (smtp-source without -d), the payload of smtp-source's own making. Both fsync before 250:
# Postfix's cleanup(8) fsyncs the queue file before it answers (its default; STRACE=1 shows it);
# Postroom fsyncs the Maildir file and `new` for a local copy, or the spool file, its directory
# and a redb commit for a queued one (docs/PERFORMANCE.md shows the counts from strace). Rates are end to end: the clock stops when the last message is a file in
# the Maildir; the rate at which smtp-source got its 250s is printed beside it.
#
# Peak RSS: the VmRSS of every process in a side's process tree (Postfix: master and all its
# children; Postroom: the supervisor and all its children), summed, sampled every 0.1 s during
# that side's runs, the highest sum printed.
#
# Every process this script starts is stopped on exit, also on failure or Ctrl-C.
set -euo pipefail

SESSIONS=${1:-20}
MESSAGES=${2:-2000}
SIZE=${3:-5k}
ROUNDS=${ROUNDS:-3}
case $SIZE in
*[kK]) SIZE=$((${SIZE%[kK]} * 1024)) ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench-lib.sh
. "$ROOT/scripts/bench-lib.sh"

need_root
need_program postfix
need_program smtp-source
need_program awk
need_program ss
if [ "${STRACE:-0}" = 1 ]; then need_program strace; fi
if [ "${PERF:-0}" = 1 ]; then need_program perf; fi

WORK=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/postroom-bench-smtp.XXXXXX")
chmod 755 "$WORK"
SAMPLER_PID=
STRACE_PID=
PERF_PID=
cleanup() {
    local status=$?
    set +e
    trap - ERR
    [ -n "$PERF_PID" ] && kill "$PERF_PID" 2>/dev/null && wait "$PERF_PID" 2>/dev/null
    [ -n "$STRACE_PID" ] && kill "$STRACE_PID" 2>/dev/null && wait "$STRACE_PID" 2>/dev/null
    [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null && wait "$SAMPLER_PID" 2>/dev/null
    kill_smtp_source
    stop_postroom
    stop_postfix
    if [ "${KEEP:-0}" = 1 ]; then
        echo "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'echo "$0: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

POSTROOM_BIN=$(postroom_binary)

# --- Postfix: a private instance with virtual(8) Maildir delivery -------------------------------
PF_SMTP=$(free_port)
start_postfix "$WORK/postfix" "$PF_SMTP"
PF_MAILDIR="$WORK/postfix/mail/alice"

# --- Postroom: the dev config with its own ports and data dir ----------------------------------
PR_SMTP=$(free_port)
write_postroom_config "$WORK/postroom" "$PR_SMTP" 1000
start_postroom "$WORK/postroom"
PR_MAILDIR="$WORK/postroom/data/mail/alice"

fs_of() { df -P "$1" | awk 'NR == 2 { print $1 " " $6 }'; }
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min)"
echo "file systems: postfix $(fs_of "$WORK/postfix/queue"), postroom $(fs_of "$WORK/postroom/data")"
echo "run: $SESSIONS sessions, $MESSAGES messages of $SIZE bytes, $ROUNDS rounds per side"
echo

# One run: smtp-source to PORT, then wait until MAILDIR holds MESSAGES more files. Sets RESULT
# to "accepted_seconds delivered_seconds peak_VmRSS_kib peak_Pss_kib". Runs in this shell (not
# in $(...)), so that the EXIT trap sees and stops the sampler and smtp-source.
run_once() {
    local side=$1 port=$2 maildir=$3 root_pid=$4
    local before start accepted delivered count deadline peak pss peak_file="$WORK/peak.$side"
    before=$(count_messages "$maildir")
    sample_tree_rss "$root_pid" "$peak_file" &
    SAMPLER_PID=$!
    if [ "${STRACE:-0}" = 1 ]; then
        local pid args=()
        for pid in $(tree_pids "$root_pid"); do args+=(-p "$pid"); done
        strace -c -f -o "$WORK/strace.$side.$round" "${args[@]}" 2>/dev/null &
        STRACE_PID=$!
        sleep 1
    fi
    if [ "${PERF:-0}" = 1 ]; then
        perf record -q -e cpu-clock -g -o "$WORK/perf.$side.$round" \
            -p "$(tree_pids "$root_pid" | paste -sd,)" >/dev/null 2>&1 &
        PERF_PID=$!
        sleep 1
    fi
    start=$(now)
    SMTP_SOURCE_PID=
    smtp-source -s "$SESSIONS" -m "$MESSAGES" -l "$SIZE" -M bench.example \
        -f sender@bench.example -t alice@office.example "127.0.0.1:$port" \
        >"$WORK/smtp-source.$side.log" 2>&1 &
    SMTP_SOURCE_PID=$!
    if ! wait "$SMTP_SOURCE_PID"; then
        SMTP_SOURCE_PID=
        echo "smtp-source to $side failed:" >&2
        tail -5 "$WORK/smtp-source.$side.log" >&2
        return 1
    fi
    SMTP_SOURCE_PID=
    accepted=$(now)
    deadline=$(awk -v a="$accepted" -v n="$MESSAGES" 'BEGIN { printf "%.3f", a + 60 + n / 10 }')
    while :; do
        count=$(($(count_messages "$maildir") - before))
        [ "$count" -ge "$MESSAGES" ] && break
        if awk -v n="$(now)" -v d="$deadline" 'BEGIN { exit !(n > d) }'; then
            echo "$side: only $count of $MESSAGES messages in the Maildir after waiting" >&2
            return 1
        fi
        sleep 0.02
    done
    delivered=$(now)
    if [ -n "$STRACE_PID" ]; then
        kill -INT "$STRACE_PID" 2>/dev/null || true
        wait "$STRACE_PID" 2>/dev/null || true
        STRACE_PID=
        echo "$side, round $round: system calls per message (strace -c -f):" >&2
        local calls='fsync|fdatasync|sync_file_range|rename|renameat2?|link|linkat|unlink|unlinkat'
        calls="$calls|openat|write|writev|pwrite64|read|sendto|recvfrom|futex|epoll_wait|total"
        awk -v n="$MESSAGES" -v calls="^($calls)\$" '$NF ~ calls {
                printf "    %-16s %8.2f\n", $NF, $4 / n
            }' "$WORK/strace.$side.$round" >&2
    fi
    if [ -n "$PERF_PID" ]; then
        kill -INT "$PERF_PID" 2>/dev/null || true
        wait "$PERF_PID" 2>/dev/null || true
        PERF_PID=
        echo "$side, round $round: where the CPU went (perf report --no-children, top 30):" >&2
        perf report -i "$WORK/perf.$side.$round" --stdio --no-children --no-inline \
            --sort comm,dso,sym \
            -g none --percent-limit 0.7 2>/dev/null | grep -v '^#' | grep -v '^$' | head -30 >&2
    fi
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=
    read -r peak pss <"$peak_file"
    RESULT=$(awk -v s="$start" -v a="$accepted" -v d="$delivered" -v p="$peak" -v q="$pss" \
        'BEGIN { printf "%.3f %.3f %d %d\n", a - s, d - s, p, q }')
}

declare -A ACC_SUM DEL_SUM PEAK PEAK_PSS
for side in postfix postroom; do
    ACC_SUM[$side]=0 DEL_SUM[$side]=0 PEAK[$side]=0 PEAK_PSS[$side]=0
done

printf '%-6s %-9s %11s %11s %11s %11s %12s %12s\n' round side accepted_s delivered_s \
    accepted/s delivered/s peak_VmRSS peak_Pss
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then order="postfix postroom"; else order="postroom postfix"; fi
    for side in $order; do
        if [ "$side" = postfix ]; then
            run_once postfix "$PF_SMTP" "$PF_MAILDIR" "$(postfix_master_pid)"
        else
            run_once postroom "$PR_SMTP" "$PR_MAILDIR" "$POSTROOM_PID"
        fi
        read -r acc del peak pss <<<"$RESULT"
        ACC_SUM[$side]=$(awk -v a="${ACC_SUM[$side]}" -v b="$acc" 'BEGIN { printf "%.3f", a + b }')
        DEL_SUM[$side]=$(awk -v a="${DEL_SUM[$side]}" -v b="$del" 'BEGIN { printf "%.3f", a + b }')
        [ "$peak" -gt "${PEAK[$side]}" ] && PEAK[$side]=$peak
        [ "$pss" -gt "${PEAK_PSS[$side]}" ] && PEAK_PSS[$side]=$pss
        awk -v r="$round" -v s="$side" -v a="$acc" -v d="$del" -v n="$MESSAGES" -v p="$peak" \
            -v q="$pss" 'BEGIN {
                printf "%-6s %-9s %11.2f %11.2f %11.1f %11.1f %8.1f MiB %8.1f MiB\n",
                    r, s, a, d, n / a, n / d, p / 1024, q / 1024 }'
    done
done

echo
total=$((MESSAGES * ROUNDS))
awk -v n="$total" -v pa="${ACC_SUM[postfix]}" -v pd="${DEL_SUM[postfix]}" \
    -v ra="${ACC_SUM[postroom]}" -v rd="${DEL_SUM[postroom]}" \
    -v pp="${PEAK[postfix]}" -v rp="${PEAK[postroom]}" \
    -v pq="${PEAK_PSS[postfix]}" -v rq="${PEAK_PSS[postroom]}" 'BEGIN {
    f = "%-9s %7.1f msg/s delivered (%7.1f msg/s accepted); peak VmRSS sum %6.1f MiB, Pss %6.1f MiB\n"
    printf f, "postfix:", n / pd, n / pa, pp / 1024, pq / 1024
    printf f, "postroom:", n / rd, n / ra, rp / 1024, rq / 1024
    printf "ratio postroom/postfix: %.2fx delivered, %.2fx accepted (goal: 2x or more)\n",
        pd / rd, pa / ra
    printf "peak memory postroom/postfix: %.2f (VmRSS sums), %.2f (Pss sums)\n", rp / pp, rq / pq
}'
echo "load after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
