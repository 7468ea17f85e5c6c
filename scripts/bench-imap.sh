#!/usr/bin/env bash
# bench-imap.sh: one 10,000-message mailbox in Postroom and in Dovecot, read by one IMAP client.
#
# Needs: root (Dovecot's master starts as root); dovecot with dovecot-imapd; python3 (imaplib,
# the client); openssl (Dovecot's test certificate); cargo (builds `postroom` in release); awk, ss.
#
# Usage: scripts/bench-imap.sh [MESSAGES]
#   MESSAGES  messages in the mailbox (default 10000)
# Environment:
#   ROUNDS=2          sessions per side; the first is cold (neither server has indexed the
#                     mailbox yet), the rest warm; the sides take turns (R=Postroom, D=Dovecot:
#                     RD DR RD ...)
#   POSTROOM_BIN=...  use this binary instead of building one (`cargo build --release`)
#   KEEP=1            keep the temp directory; BENCH_TMP=DIR puts it elsewhere (default /tmp)
#
# The messages are generated from a fixed seed (sizes from 600 bytes to 200 KB, a few multipart
# with a base64 attachment, CRLF line ends), written once and copied as the same files, names
# and mtimes into both Maildirs. Both servers are read over implicit TLS (Postroom allows no
# plain-text login without TLS), with the same client: Python's imaplib. Each session times:
#   login+SELECT, FETCH of the message in the middle (BODY.PEEK[]), SEARCH SUBJECT (a header),
#   SEARCH BODY (full text), FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER]),
#   FETCH 1:* (BODY.PEEK[]).
# It checks that both servers served the same set of messages (digest of every body).
#
# Every process this script starts is stopped on exit, also on failure or Ctrl-C.
set -euo pipefail

MESSAGES=${1:-10000}
ROUNDS=${ROUNDS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench-lib.sh
. "$ROOT/scripts/bench-lib.sh"

need_root
need_program dovecot
need_program python3
need_program openssl
need_program awk
need_program ss

WORK=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/postroom-bench-imap.XXXXXX")
chmod 755 "$WORK"
cleanup() {
    local status=$?
    set +e
    trap - ERR
    stop_postroom
    stop_dovecot
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'echo "$0: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

stop_dovecot() {
    [ -n "$DOVECOT_DIR" ] || return 0
    local master pids i
    master=$(cat "$DOVECOT_DIR/run/master.pid" 2>/dev/null || true)
    [ -n "$master" ] && pids=$(tree_pids "$master")
    dovecot -c "$DOVECOT_DIR/dovecot.conf" stop >/dev/null 2>&1 || true
    if [ -n "$master" ]; then
        for i in $(seq 1 100); do
            kill -0 "$master" 2>/dev/null || break
            sleep 0.1
        done
        for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
    fi
    DOVECOT_DIR=
}

POSTROOM_BIN=$(postroom_binary)

# --- The mailbox --------------------------------------------------------------------------------
cat >"$WORK/client.py" <<'PYTHON'
"""Generates the benchmark mailbox, or reads it from two IMAP servers and prints timings."""
import base64
import hashlib
import imaplib
import os
import random
import ssl
import sys
import time

WORDS = ("office meeting invoice order parcel printer budget minutes agenda review "
         "quarter report holiday schedule contract supplier customer draft final "
         "please thanks regards tomorrow monday friday lunch coffee project").split()


def text_lines(rng, size):
    out, total = [], 0
    while total < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14)))
        out.append(line)
        total += len(line) + 2
    return out


def generate(dest, count):
    rng = random.Random(20261203)
    cur = os.path.join(dest, "cur")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(dest, sub), exist_ok=True)
    base = 1764000000
    for i in range(1, count + 1):
        roll = rng.random()
        size = (rng.randint(600, 8000) if roll < 0.85
                else rng.randint(8000, 50000) if roll < 0.97 else rng.randint(50000, 200000))
        sender = f"{rng.choice(WORDS)}.{rng.randint(1, 40)}@example.net"
        subject = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))
        if i % 1000 == 500:
            subject = f"invoice 4711 {subject}"
        stamp = base + i * 60
        date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(stamp))
        head = [f"Return-Path: <{sender}>", "Delivered-To: alice@office.example",
                f"From: {sender}", "To: alice@office.example", f"Subject: {subject}",
                f"Date: {date}", f"Message-ID: <{i}.bench@example.net>", "MIME-Version: 1.0"]
        body = text_lines(rng, size)
        if i % 2500 == 1250:
            body[len(body) // 2] += " zebracrossing"
        if roll >= 0.97:
            boundary = f"=-bench-{i}"
            blob = rng.randbytes(size // 2)
            b64 = base64.b64encode(blob).decode()
            att = [b64[k:k + 76] for k in range(0, len(b64), 76)]
            head.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
            lines = head + ["", f"--{boundary}", "Content-Type: text/plain; charset=us-ascii",
                            ""] + body[:20] + [f"--{boundary}",
                                               "Content-Type: application/octet-stream",
                                               "Content-Transfer-Encoding: base64", ""] \
                + att + [f"--{boundary}--", ""]
        else:
            head.append("Content-Type: text/plain; charset=us-ascii")
            lines = head + [""] + body
        data = ("\r\n".join(lines) + "\r\n").encode()
        flags = "S" if i <= count * 0.8 else ""
        path = os.path.join(cur, f"{stamp}.M{i}P1.bench:2,{flags}")
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (stamp, stamp))


def session(port, count):
    """One client session; returns (timings, digest of the bodies)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    t = {}
    start = time.perf_counter()
    imap = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx)
    imap.login("alice", "dev-password")
    typ, data = imap.select("INBOX", readonly=True)
    exists = int(data[0])
    if exists != count:
        raise SystemExit(f"port {port}: SELECT says {exists} messages, expected {count}")
    t["login+select"] = time.perf_counter() - start

    mid = str(count // 2)
    start = time.perf_counter()
    typ, data = imap.fetch(mid, "(BODY.PEEK[])")
    t["fetch middle"] = time.perf_counter() - start
    mid_size = len(data[0][1])

    start = time.perf_counter()
    typ, data = imap.search(None, "SUBJECT", '"invoice 4711"')
    t["search subject"] = time.perf_counter() - start
    subject_hits = len(data[0].split())

    start = time.perf_counter()
    typ, data = imap.search(None, "BODY", "zebracrossing")
    t["search body"] = time.perf_counter() - start
    body_hits = len(data[0].split())

    start = time.perf_counter()
    typ, data = imap.fetch("1:*", "(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER])")
    t["fetch all headers"] = time.perf_counter() - start
    headers = sum(1 for d in data if isinstance(d, tuple))

    start = time.perf_counter()
    typ, data = imap.fetch("1:*", "(BODY.PEEK[])")
    t["fetch all bodies"] = time.perf_counter() - start
    bodies = [d[1] for d in data if isinstance(d, tuple)]
    imap.logout()

    if headers != count or len(bodies) != count:
        raise SystemExit(f"port {port}: {headers} headers, {len(bodies)} bodies of {count}")
    digest = hashlib.sha256()
    for h in sorted(hashlib.sha256(b).digest() for b in bodies):
        digest.update(h)
    info = (f"middle message {mid_size} bytes, SEARCH SUBJECT {subject_hits} hits, "
            f"SEARCH BODY {body_hits} hits, {sum(map(len, bodies)) / 1e6:.1f} MB of bodies")
    return t, digest.hexdigest(), info


def bench(postroom_port, dovecot_port, count, rounds):
    ports = {"postroom": postroom_port, "dovecot": dovecot_port}
    results = {"postroom": [], "dovecot": []}
    digests = {}
    for r in range(rounds):
        order = ["postroom", "dovecot"] if r % 2 == 0 else ["dovecot", "postroom"]
        for side in order:
            t, digest, info = session(ports[side], count)
            results[side].append(t)
            digests.setdefault(side, set()).add(digest)
            print(f"round {r + 1} ({'cold' if r == 0 else 'warm'}) {side}: {info}", flush=True)
    same = digests["postroom"] == digests["dovecot"] and len(digests["postroom"]) == 1
    print(f"both served the same {count} messages: {'yes' if same else 'NO'}")
    print()
    steps = list(results["postroom"][0].keys())
    for r in range(rounds):
        label = "cold (first session)" if r == 0 else f"warm (session {r + 1})"
        print(f"{label}:")
        print(f"  {'step':<20} {'postroom s':>11} {'dovecot s':>11} {'speed postroom/dovecot':>23}")
        for step in steps:
            p, d = results["postroom"][r][step], results["dovecot"][r][step]
            print(f"  {step:<20} {p:>11.3f} {d:>11.3f} {d / p:>22.2f}x")
        p = sum(results["postroom"][r][s] for s in ("fetch all headers", "fetch all bodies"))
        d = sum(results["dovecot"][r][s] for s in ("fetch all headers", "fetch all bodies"))
        print(f"  {'headers+bodies':<20} {p:>11.3f} {d:>11.3f} {d / p:>22.2f}x")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    if sys.argv[1] == "generate":
        generate(sys.argv[2], int(sys.argv[3]))
    else:
        bench(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
PYTHON

echo "generating $MESSAGES messages (fixed seed)..."
python3 "$WORK/client.py" generate "$WORK/source" "$MESSAGES"
echo "mailbox: $(du -sh --apparent-size "$WORK/source/cur" | cut -f1) in $MESSAGES files"

# --- Postroom -------------------------------------------------------------------------------------
write_postroom_config "$WORK/postroom" "$(free_port)" 10
mkdir -p "$WORK/postroom/data/mail/alice"
cp -a "$WORK/source/." "$WORK/postroom/data/mail/alice/"
start_postroom "$WORK/postroom"
wait_for_port "$PR_PORT_imaps" 30 || {
    echo "postroom's IMAPS port did not open" >&2
    exit 1
}

# --- Dovecot: a private instance, static passdb and userdb, Maildir ------------------------------
DOVECOT_DIR="$WORK/dovecot"
DOVECOT_PORT=$(free_port)
mkdir -p "$DOVECOT_DIR/run" "$DOVECOT_DIR/state" "$DOVECOT_DIR/mail/alice"
cp -a "$WORK/source/." "$DOVECOT_DIR/mail/alice/"
chown -R nobody:nogroup "$DOVECOT_DIR/mail"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -keyout "$DOVECOT_DIR/key.pem" -out "$DOVECOT_DIR/cert.pem" \
    >/dev/null 2>&1
cat >"$DOVECOT_DIR/dovecot.conf" <<EOF
base_dir = $DOVECOT_DIR/run
state_dir = $DOVECOT_DIR/state
instance_name = postroom-bench
log_path = $DOVECOT_DIR/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <$DOVECOT_DIR/cert.pem
ssl_key = <$DOVECOT_DIR/key.pem
auth_mechanisms = plain
passdb {
  driver = static
  args = password=dev-password
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$DOVECOT_DIR/mail/%u
}
mail_location = maildir:$DOVECOT_DIR/mail/%u
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $DOVECOT_PORT
  }
}
EOF
dovecot -c "$DOVECOT_DIR/dovecot.conf"
wait_for_port "$DOVECOT_PORT" 30 || {
    echo "dovecot did not listen on $DOVECOT_PORT; log:" >&2
    tail -20 "$DOVECOT_DIR/dovecot.log" >&2
    exit 1
}

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min)"
echo "dovecot $(dovecot --version | cut -d' ' -f1), postroom $("$POSTROOM_BIN" --version)"
echo
python3 "$WORK/client.py" bench "$PR_PORT_imaps" "$DOVECOT_PORT" "$MESSAGES" "$ROUNDS"
echo "load after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
