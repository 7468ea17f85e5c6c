#!/usr/bin/env bash
# profile-symbol-order.sh: writes board/symbol-order/<target>.txt, the order in which the
# linker lays out the firmware binary's functions (scripts/build-firmware.sh passes it to lld).
#
# Why: the supervisor, mail and link are one binary. Each process maps the pages of it that it
# runs, and the kernel maps up to 64 KiB of cached file pages around each page fault. In the
# compiler's own order the code one process runs is spread over nearly the whole text, so each
# of the three processes had 88 to 95 % of it resident. Put in this order (the functions all
# three run first, then those two share, then each one's own), a process maps little more than
# what it runs (docs/PERFORMANCE.md "Memory").
#
# How: builds the x86_64 firmware binary with its symbols, runs `postroom run` with
# examples/dev.toml under valgrind's callgrind (children too), sends one message over SMTP,
# reads it over IMAP and POP3, stops, and turns the functions each component ran into the
# order (scripts/symbol-order.py). For aarch64 the same names are found in an aarch64 build
# with symbols (a mangled name's hash differs between targets). Run it again when the code
# changes much: a stale file only costs memory (lld skips names it no longer finds).
#
# Needs: valgrind, python3, awk, ss, nm, and what scripts/build-firmware.sh needs. Root is not
# needed. About 15 minutes on 2 cores (three release builds and the profile).
#
# Usage: scripts/profile-symbol-order.sh          (KEEP=1 keeps the temp dir)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench-lib.sh
. "$ROOT/scripts/bench-lib.sh"

for program in valgrind python3 nm; do need_program "$program"; done

WORK=$(mktemp -d "${BENCH_TMP:-/tmp}/postroom-symbol-order.XXXXXX")
cleanup() {
    stop_postroom
    if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$ROOT/board/symbol-order
mkdir -p "$OUT"

# Without an order file (the profile must not depend on an older order); cargo's binary keeps
# its symbols, named as in every firmware build (build-firmware.sh says why).
build_with_symbols() {
    POSTROOM_SYMBOL_ORDER=none "$ROOT/scripts/build-firmware.sh" "$1" >&2
    cp "$TARGET_DIR/$1/release/postroom" "$WORK/postroom-$1"
}

build_with_symbols x86_64-unknown-linux-musl
POSTROOM_BIN=$WORK/postroom-x86_64-unknown-linux-musl

write_postroom_config "$WORK/postroom" "$(free_port)" 10
valgrind --tool=callgrind --trace-children=yes --demangle=no \
    --callgrind-out-file="$WORK/callgrind.%p" \
    "$POSTROOM_BIN" run --config "$WORK/postroom/postroom.toml" >"$WORK/postroom/postroom.log" 2>&1 &
POSTROOM_PID=$!
# Under valgrind everything runs some 50 times slower.
for port in "$PR_PORT_smtp" "$PR_PORT_imap" "$PR_PORT_pop3"; do
    wait_for_port "$port" 300 || {
        echo "$0: postroom under valgrind did not open port $port; its log:" >&2
        tail -20 "$WORK/postroom/postroom.log" >&2
        exit 1
    }
done

python3 - "$PR_PORT_smtp" "$PR_PORT_imap" "$PR_PORT_pop3" <<'EOF'
import imaplib, poplib, smtplib, sys
smtp, imap, pop3 = (int(p) for p in sys.argv[1:4])
message = ("From: bob@office.example\r\nTo: alice@office.example\r\n"
           "Subject: profile\r\n\r\nhello\r\n")
with smtplib.SMTP("127.0.0.1", smtp, timeout=120) as s:
    s.sendmail("bob@office.example", ["alice@office.example"], message)
i = imaplib.IMAP4("127.0.0.1", imap, timeout=120)
i.starttls()
i.login("alice", "dev-password")
i.select("INBOX")
i.fetch("1:*", "(FLAGS BODY.PEEK[])")
i.logout()
p = poplib.POP3("127.0.0.1", pop3, timeout=120)
p.stls()
p.user("bob")
p.pass_("dev-password")
p.stat()
p.quit()
EOF
sleep 10
stop_postroom
sleep 2

python3 "$ROOT/scripts/symbol-order.py" "$WORK"/callgrind.* >"$OUT/x86_64-unknown-linux-musl.txt"

build_with_symbols aarch64-unknown-linux-musl
nm "$WORK/postroom-aarch64-unknown-linux-musl" >"$WORK/nm-aarch64"
python3 "$ROOT/scripts/symbol-order.py" --translate "$WORK/nm-aarch64" \
    <"$OUT/x86_64-unknown-linux-musl.txt" >"$OUT/aarch64-unknown-linux-musl.txt"

wc -l "$OUT"/*.txt
