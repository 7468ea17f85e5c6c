# bench-lib.sh: shared parts of scripts/bench-smtp.sh, bench-imap.sh and bench-memory.sh.
# Sourced, not run. Needs bash, awk, ss (iproute2), and for the Postfix parts root and postfix.
#
# The caller sets ROOT (the repository) and calls stop_postroom / stop_postfix / stop_dovecot
# from its EXIT trap; each of them is safe to call when nothing was started.

POSTROOM_PID=
PF_DIR=
DOVECOT_DIR=
SMTP_SOURCE_PID=

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "$0: needs root (Postfix's and Dovecot's masters start as root)" >&2
        exit 2
    fi
}

need_program() {
    if ! command -v "$1" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$1" ]; then
        echo "$0: needs $1, which is not installed" >&2
        exit 2
    fi
}

now() { date +%s.%N; }

# A TCP port on 127.0.0.1 that nothing listens on (random, so parallel callers rarely collide).
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 40000))
        if ! ss -Htln "sport = :$port" | grep -q .; then
            echo "$port"
            return
        fi
    done
}

wait_for_port() {
    local port=$1 limit=$2 i
    for i in $(seq 1 $((limit * 10))); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# The pids of ROOT and all its descendants, one a line.
tree_pids() {
    { cat /proc/[0-9]*/status 2>/dev/null || true; } | awk -v root="$1" '
        /^Pid:/ { pid = $2 }
        /^PPid:/ { parent[pid] = $2 }
        END {
            keep[root] = 1; changed = 1
            while (changed) {
                changed = 0
                for (p in parent)
                    if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; changed = 1 }
            }
            for (p in keep) if (p in parent) print p
        }'
}

# Sum of VmRSS (KiB) over ROOT and all its descendants, from /proc/*/status.
tree_rss() {
    { cat /proc/[0-9]*/status 2>/dev/null || true; } | awk -v root="$1" '
        /^Pid:/ { pid = $2 }
        /^PPid:/ { parent[pid] = $2 }
        /^VmRSS:/ { rss[pid] = $2 }
        END {
            keep[root] = 1; changed = 1
            while (changed) {
                changed = 0
                for (p in parent)
                    if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; changed = 1 }
            }
            for (p in keep) sum += rss[p]
            print sum + 0
        }'
}

# The same, one line per process: "pid name VmRSS_kib".
tree_rss_detail() {
    local pid
    for pid in $(tree_pids "$1"); do
        awk '/^Name:/ { n = $2 } /^Pid:/ { p = $2 } /^VmRSS:/ { r = $2 }
             END { printf "%7s %-16s %6d KiB\n", p, n, r }' "/proc/$pid/status" 2>/dev/null || true
    done
}

# Sum of Pss (KiB) over ROOT and all its descendants, from /proc/*/smaps_rollup (shared pages
# divided among the processes that map them; needs root for other users' processes).
tree_pss() {
    local pid files=()
    for pid in $(tree_pids "$1"); do files+=("/proc/$pid/smaps_rollup"); done
    [ ${#files[@]} -gt 0 ] || { echo 0; return; }
    { cat "${files[@]}" 2>/dev/null || true; } | awk '/^Pss:/ { s += $2 } END { print s + 0 }'
}

# Samples ROOT's tree every 0.1 s until killed; OUT always holds "peak_VmRSS_sum peak_Pss_sum"
# (KiB; each the highest so far, Pss every fifth sample as it costs more to read).
sample_tree_rss() {
    local root=$1 out=$2 peak=0 peak_pss=0 rss pss n=0
    echo "0 0" >"$out"
    trap 'exit 0' TERM
    while :; do
        rss=$(tree_rss "$root") || rss=0
        [ "$rss" -gt "$peak" ] && peak=$rss
        if [ $((n % 5)) = 0 ]; then
            pss=$(tree_pss "$root") || pss=0
            [ "$pss" -gt "$peak_pss" ] && peak_pss=$pss
        fi
        n=$((n + 1))
        echo "$peak $peak_pss" >"$out.new"
        mv "$out.new" "$out"
        sleep 0.1
    done
}

# Messages in a Maildir (new and cur).
count_messages() {
    { find "$1/new" "$1/cur" -maxdepth 1 -type f 2>/dev/null || true; } | wc -l
}

kill_smtp_source() {
    if [ -n "$SMTP_SOURCE_PID" ]; then
        kill "$SMTP_SOURCE_PID" 2>/dev/null || true
        wait "$SMTP_SOURCE_PID" 2>/dev/null || true
        SMTP_SOURCE_PID=
    fi
}

# --- Postroom -------------------------------------------------------------------------------------

# The release binary: $POSTROOM_BIN, else built now with `cargo build --release -p postroom`.
postroom_binary() {
    if [ -n "${POSTROOM_BIN:-}" ]; then
        echo "$POSTROOM_BIN"
        return
    fi
    (cd "$ROOT" && cargo build --release -p postroom >&2)
    echo "${CARGO_TARGET_DIR:-$ROOT/target}/release/postroom"
}

# Writes DIR/postroom.toml: examples/dev.toml (users, aliases, link simulator and all) with its
# data under DIR/data, fresh ports (PR_PORT_<listener> are set), and
# max_connections_per_client = MAXCONN (dev.toml's 10 would refuse half of 20 benchmark
# sessions, which all come from 127.0.0.1).
write_postroom_config() {
    local dir=$1 smtp_port=$2 maxconn=$3 key port script
    mkdir -p "$dir/data"
    PR_PORT_smtp=$smtp_port
    script="s#\"\\.\\./dev-data#\"$dir/data#g"
    script="$script; s#^max_connections_per_client = .*#max_connections_per_client = $maxconn#"
    for key in smtp submission submissions imap imaps pop3 pop3s; do
        if [ "$key" = smtp ]; then port=$smtp_port; else port=$(free_port); fi
        printf -v "PR_PORT_$key" %s "$port"
        script="$script; s#^$key = \"127\\.0\\.0\\.1:[0-9]*\"#$key = \"127.0.0.1:$port\"#"
    done
    sed "$script" "$ROOT/examples/dev.toml" >"$dir/postroom.toml"
    if grep -v '^ *#' "$dir/postroom.toml" | grep -q 'dev-data\|:2[0-9][0-9][0-9]"'; then
        echo "$0: could not rewrite examples/dev.toml for the benchmark" >&2
        exit 1
    fi
}

# Starts `postroom run` on DIR/postroom.toml (log in DIR/postroom.log) and waits for SMTP.
start_postroom() {
    local dir=$1
    "$POSTROOM_BIN" run --config "$dir/postroom.toml" >"$dir/postroom.log" 2>&1 &
    POSTROOM_PID=$!
    if ! wait_for_port "$PR_PORT_smtp" 60 || ! kill -0 "$POSTROOM_PID" 2>/dev/null; then
        echo "postroom did not start; its log:" >&2
        tail -20 "$dir/postroom.log" >&2
        exit 1
    fi
}

stop_postroom() {
    [ -n "$POSTROOM_PID" ] || return 0
    local pids i
    pids=$(tree_pids "$POSTROOM_PID")
    kill -TERM "$POSTROOM_PID" 2>/dev/null || true
    for i in $(seq 1 200); do
        kill -0 "$POSTROOM_PID" 2>/dev/null || break
        sleep 0.1
    done
    # Whatever is left of the tree (the supervisor should have stopped it all).
    for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
    wait "$POSTROOM_PID" 2>/dev/null || true
    POSTROOM_PID=
}

# --- Postfix --------------------------------------------------------------------------------------

# A private Postfix under DIR (etc, queue, data, mail), smtpd on 127.0.0.1:PORT, delivering
# office.example to DIR/mail/<user>/ Maildirs with virtual(8) as user nobody.
start_postfix() {
    local dir=$1 port=$2 uid gid
    PF_DIR=$dir
    mkdir -p "$dir/etc" "$dir/queue" "$dir/data" "$dir/mail"
    chmod 755 "$dir"
    chown postfix "$dir/data"
    uid=$(id -u nobody)
    gid=$(id -g nobody)
    chown "$uid:$gid" "$dir/mail"
    cat >"$dir/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-postroom-bench
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mail.office.example
mydomain = office.example
mydestination =
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
biff = no
smtp_dns_support_level = disabled
smtpd_tls_security_level = none
virtual_mailbox_domains = office.example
virtual_mailbox_base = $dir/mail
virtual_mailbox_maps = static:alice/
virtual_uid_maps = static:$uid
virtual_gid_maps = static:$gid
virtual_minimum_uid = 1
EOF
    cat >"$dir/etc/master.cf" <<EOF
127.0.0.1:$port inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
EOF
    : >"$dir/maillog"
    postfix -c "$dir/etc" check >"$dir/check.log" 2>&1 || {
        cat "$dir/check.log" >&2
        exit 1
    }
    postfix -c "$dir/etc" start >"$dir/start.log" 2>&1 || {
        cat "$dir/start.log" >&2
        exit 1
    }
    if ! wait_for_port "$port" 30; then
        echo "postfix smtpd did not listen on $port; log:" >&2
        tail -20 "$dir/maillog" >&2
        exit 1
    fi
}

postfix_master_pid() {
    awk '{ print $1 }' "$PF_DIR/queue/pid/master.pid"
}

stop_postfix() {
    [ -n "$PF_DIR" ] || return 0
    local master pids i
    master=$(postfix_master_pid 2>/dev/null || true)
    [ -n "$master" ] && pids=$(tree_pids "$master")
    postfix -c "$PF_DIR/etc" stop >/dev/null 2>&1 || true
    if [ -n "$master" ]; then
        for i in $(seq 1 100); do
            kill -0 "$master" 2>/dev/null || break
            sleep 0.1
        done
        for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
    fi
    PF_DIR=
}
