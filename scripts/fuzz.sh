#!/bin/sh
# Runs the cargo-fuzz targets in fuzz/ one after the other, each for the given time, and prints
# executions, coverage and features per target. See docs/RELIABILITY.md.
#
#   scripts/fuzz.sh [SECONDS [TARGET...]]     default: 600 seconds, every target
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). It runs on the stable toolchain with
# RUSTC_BOOTSTRAP=1 (libFuzzer's instrumentation flags are unstable); no nightly is needed.
# Corpora grow in fuzz/corpus/<target>/ (seeded by fuzz/seed.sh when missing), crashes land in
# fuzz/artifacts/<target>/, logs in fuzz/target/logs/. The inputs in fuzz/regressions/<target>/
# are replayed at the start of every run. Exits non-zero if any target crashed.
set -eu
cd "$(dirname "$0")/../fuzz"
seconds=${1:-600}
[ $# -gt 0 ] && shift
targets=${*:-$(cargo fuzz list)}
export RUSTC_BOOTSTRAP=1
mkdir -p target/logs

# The crate feature each target needs (fuzz/Cargo.toml): building one target does not need the
# others' crates to compile.
feature() {
    case $1 in
        smtp_session) echo smtp ;;
        modem_engine) echo modem ;;
        config_parse) echo config ;;
        mime_summary) echo queue ;;
        imap_session) echo imap ;;
        pop3_session) echo pop3 ;;
        multidrop_recipients) echo fetch ;;
        *) echo "fuzz.sh: unknown target $1" >&2; exit 2 ;;
    esac
}

failed=""
summary=""
for target in $targets; do
    [ -d "corpus/$target" ] || ./seed.sh >/dev/null
    mkdir -p "corpus/$target" "regressions/$target" "artifacts/$target"
    log="target/logs/$target.log"
    echo "== $target: ${seconds}s, log in fuzz/$log"
    # -s none: the code under test is safe Rust; AddressSanitizer would only halve the speed.
    # -a: debug assertions and overflow checks on.
    if cargo fuzz run -s none -a --no-default-features --features "$(feature "$target")" \
        "$target" "corpus/$target" "regressions/$target" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="artifacts/$target/" >"$log" 2>&1; then
        status=ok
    else
        status=CRASH
        failed="$failed $target"
    fi
    runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 runs in \2 s/p' "$log")
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1 |
        sed 's/^\(#[0-9]*\)[[:space:]]*[A-Z]*[[:space:]]*/\1 /')
    line="$target: $status; ${runs:-no runs}; last status: ${last:-none}"
    echo "$line"
    summary="$summary$line
"
done
printf '\n%s' "$summary"
if [ -n "$failed" ]; then
    echo "crashed:$failed (inputs in fuzz/artifacts/<target>/)" >&2
    exit 1
fi
