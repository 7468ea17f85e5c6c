#!/bin/sh
# Builds the seed corpora of the fuzz targets under fuzz/corpus/<target>/ (git-ignored) from
# shared/cases (the README's byte strings and the .eml files), from the SMTP transcript tests
# and the modem engine tests, and from examples/*.toml. Each seed is in its target's input
# form (see the header comment of each fuzz_targets/*.rs).
#
#   fuzz/seed.sh [CASES_DIR]      default CASES_DIR: ../shared/cases from the repository root
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cases=${1:-$root/../shared/cases}
[ -f "$cases/README.md" ] || { echo "seed.sh: no $cases/README.md" >&2; exit 1; }
exec python3 - "$root" "$cases" <<'PY'
import hashlib, pathlib, re, sys

root, cases = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
corpus = root / "fuzz" / "corpus"

def put(target, data):
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    (d / ("seed-" + hashlib.sha1(data).hexdigest()[:16])).write_bytes(data)

def unescape(s):
    """Rust byte-string or README escapes (\\r \\n \\t \\0 \\xNN \\" \\\\, line continuation)."""
    out, i = bytearray(), 0
    while i < len(s):
        c = s[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        n = s[i + 1] if i + 1 < len(s) else ""
        if n == "x":
            out.append(int(s[i + 2:i + 4], 16)); i += 4; continue
        if n == "\n":
            i += 2
            while i < len(s) and s[i] in " \t\n": i += 1
            continue
        simple = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", '"': b'"', "\\": b"\\", "'": b"'"}
        out += simple.get(n, n.encode())
        i += 2
    return bytes(out)

def stuff(message):
    """Dot-stuffs a message for DATA (RFC 5321 section 4.5.2) and adds the end marker."""
    lines = message.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"": lines.pop()
    return b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in lines) + b".\r\n"

readme = (cases / "README.md").read_text()
section = lambda name: readme.split("## " + name, 1)[1].split("\n## ", 1)[0]
ticks = lambda text: [unescape(t) for t in re.findall(r"`([^`]+)`", text.replace("\n  ", " "))]
emls = sorted(cases.glob("*.eml"))

# smtp_session: [settings][cut seed] client bytes. Settings 0x00 = MX, 0x0e = submission with
# implicit TLS and AUTH required, 0x30 = MX with small limits and bare line endings normalised.
ehlo = b"EHLO c.example\r\n"
tx = b"MAIL FROM:<b@x.example>\r\nRCPT TO:<alice@office.example>\r\nDATA\r\n"
smtp = []
for t in ticks(section("SMTP")):
    if re.match(rb"(EHLO|HELO|MAIL|RCPT|DATA|AUTH|QUIT)", t):
        smtp.append(ehlo + t + (b"" if t.endswith(b"\n") else b"\r\n") + b"QUIT\r\n")
    elif b"\\r\\n" in t or b"\n" in t:
        smtp.append(ehlo + tx + t + b"\r\n.\r\nQUIT\r\n")
for eml in emls:
    smtp.append(ehlo + tx + stuff(eml.read_bytes()) + b"QUIT\r\n")
smtp.append(ehlo + b"AUTH PLAIN AGFsaWNlAGRldi1wYXNzd29yZA==\r\n" + tx + b"x\r\n.\r\n")
smtp.append(ehlo + b"AUTH LOGIN\r\nYWxpY2U=\r\nZGV2LXBhc3N3b3Jk\r\n" + tx + b"x\r\n.\r\n")
transcripts = (root / "crates/smtp/tests/transcripts.rs").read_text()
for test in re.split(r"\n#\[test\]\n", transcripts)[1:]:
    sent = [unescape(b) for b in re.findall(r'\bb"((?:[^"\\]|\\.|\\\n)*)"', test, re.S)]
    sent = [s for s in sent if re.match(rb"[A-Z]{4}|[\x20-\x7e]*\r\n", s)]
    if sent:
        smtp.append(ehlo + b"".join(sent))
for n, session in enumerate(smtp):
    for settings in (0x00, 0x0E, 0x30):
        put("smtp_session", bytes([settings, n & 0xFF]) + session)

# modem_engine: [cut seed] command NUL answer NUL command NUL answer ...
modem = [
    [b"ATDT5551234", b"\r\nCONN" + b"ECT 33600\r\n"],
    [b"ATDT5551234", b"\r\nNO DIALTONE\r\n", b"ATDT5551234", b"\r\nNO DIAL TONE\r\n"],
    [b"ATV0", b"0\r", b"ATDT5551234", b"3\r", b"ATDT5551234", b"7\r"],
    [b"ATDT5551234", b"\r\nBUSY\r\n", b"ATDT5551234", b"\r\nERROR\r\n"],
    [b"ATE1", b"ATE1\r\r\nOK\r\n", b"ATDT5551234", b"ATDT5551234\r\r\nNO ANSWER\r\n"],
    [b"ATD*99#", b"\r\nCONNECT 115200/ARQ\r\n~\xff\x7d\x23", b"+++", b"\r\nOK\r\n"],
    [b"ATI", b"\r\nU.S. Robotics 56K\r\n\r\nOK\r\n",
     b"AT+CGDCONT?", b"\r\n+CGDCONT: 1,\"IP\"\r\nOK\r\n"],
]
engine = (root / "crates/modem/src/engine.rs").read_text()
for test in re.split(r"#\[test\]", engine)[1:]:
    script = []
    for kind, arg in re.findall(r'\.(command|feed)\((?:&?b?"((?:[^"\\]|\\.)*)")', test):
        if kind == "command" and len(script) % 2 == 1: script.append(b"")
        if kind == "feed" and len(script) % 2 == 0: script.append(b"")
        script.append(unescape(arg))
    if script: modem.append(script)
for n, script in enumerate(modem):
    put("modem_engine", bytes([n]) + b"\0".join(script))

# config_parse: configuration files as they are.
for toml in sorted((root / "examples").glob("*.toml")):
    put("config_parse", toml.read_bytes())

# mime_summary: whole messages.
for eml in emls:
    put("mime_summary", eml.read_bytes())

# multidrop_recipients: whole messages, and the envelope headers an ISP's server writes.
for eml in emls:
    put("multidrop_recipients", eml.read_bytes())
put("multidrop_recipients", b"Return-Path: <s@far.example>\r\nDelivered-To: office@isp.example\r\n"
    b"X-Original-To: Alice@Office.Example\r\nX-Envelope-To: bob@office.example, x@far.example\r\n"
    b"To: \"Team\" <team@office.example>,\r\n carol@branch.example\r\n"
    b"Cc: alice@office.example\r\n\r\nhi\r\n")
put("multidrop_recipients",
    b"To: alice@office.example (Alice); bob@Office.example\nCc: <x@far.example>\n\nbody\n")

# pop3_session: [settings][cut seed] client bytes; settings bit 0 = implicit TLS. The cases
# pop3-quit-answers and pop3-dot-stuffing (message 4 of the target's maildrop has `.hidden`).
pop3 = [
    (1, b"USER alice\r\nPASS dev-password\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 4\r\nTOP 1 2\r\n"
        b"DELE 1\r\nRSET\r\nDELE 2\r\nQUIT\r\n"),
    (1, b"CAPA\r\nAUTH PLAIN AGFsaWNlAGRldi1wYXNzd29yZA==\r\nLIST 3\r\nUIDL 2\r\nRETR 5\r\n"
        b"NOOP\r\nQUIT\r\n"),
    (1, b"AUTH PLAIN\r\nAGFsaWNlAGRldi1wYXNzd29yZA==\r\nRETR 1\r\nRETR 2\r\nRETR 3\r\nQUIT\r\n"),
    (0, b"CAPA\r\nUSER alice\r\nSTLS\r\nUSER alice\r\n"),
    (0, b"QUIT\r\n"),
]
for n, (settings, session) in enumerate(pop3):
    put("pop3_session", bytes([settings, n]) + session)

# imap_session: [settings][cut seed] client bytes; settings bit 0 = implicit TLS, bit 1 = small
# limits. The IMAP cases, then the transcript tests' client lines (password as the target's).
login = b"a LOGIN alice dev-password\r\n"
imap = [
    login + b"b SELECT INBOX\r\nA1 IDLE\r\nDONE\r\nA2 NOOP\r\n",
    login + b'c1 CREATE "Entw&APw-rfe"\r\nc2 SELECT "Entw&APw-rfe"\r\nc3 LIST "" "*"\r\n',
    login + b"A1 APPEND INBOX {999999999}\r\nA2 NOOP\r\n",
    login + b"A1 APPEND INBOX {11+}\r\nSubject: x\r\nA2 NOOP\r\n",
    login + b"s SELECT INBOX\r\nf FETCH 1:* (FLAGS BODYSTRUCTURE ENVELOPE RFC822.SIZE)\r\n"
        b"g UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)] BODY[TEXT]<0.100>)\r\n"
        b"h SEARCH SUBJECT Objedn\xc3\xa1vka\r\ni STORE 1 +FLAGS (\\Deleted)\r\n"
        b"j EXPUNGE\r\nk LOGOUT\r\n",
]
transcript = (root / "crates/imap/tests/transcripts.rs").read_text()
for test in re.split(r"\n#\[test\]\n", transcript)[1:]:
    calls = r'send(?:_bytes)?\(\s*&mut \w+,\s*b?"((?:[^"\\]|\\.)*)"'
    sent = [unescape(b) for b in re.findall(calls, test)]
    if sent:
        prefix = login if "logged_in" in test else b""
        imap.append(prefix + b"".join(sent).replace(b"secret", b"dev-password"))
for n, session in enumerate(imap):
    for settings in (0x01, 0x03):
        put("imap_session", bytes([settings, n & 0xFF]) + session)

for d in sorted(corpus.iterdir()):
    print(f"{d.relative_to(root)}: {sum(1 for _ in d.iterdir())} files")
PY
