# A scripted imaplib session covering every RFC 3501 command Postroom serves, plus the
# extensions it announces. Each step checks the server's answer; any failure raises.
import imaplib, re, ssl, sys

imaps_port, imap_port = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl._create_unverified_context()
for name, states in [("MOVE", ("SELECTED",)), ("UNSELECT", ("SELECTED",)), ("ENABLE", ("AUTH",)),
                     ("NAMESPACE", ("AUTH", "SELECTED"))]:
    imaplib.Commands.setdefault(name, states)

def ok(result, what):
    typ, data = result
    assert typ == "OK", "%s: %s %r" % (what, typ, data)
    return data

# STARTTLS on the plain port: LOGINDISABLED first, then a login over TLS.
plain = imaplib.IMAP4("127.0.0.1", imap_port)
assert "LOGINDISABLED" in plain.capabilities and "STARTTLS" in plain.capabilities, plain.capabilities
ok(plain.starttls(ssl_context=ctx), "STARTTLS")
ok(plain.authenticate("PLAIN", lambda _: b"\0alice\0secret"), "AUTHENTICATE PLAIN")
assert plain.logout()[0] == "BYE"

m = imaplib.IMAP4_SSL("127.0.0.1", imaps_port, ssl_context=ctx)
caps = ok(m.capability(), "CAPABILITY")[0].decode()
for cap in ["IMAP4rev1", "AUTH=PLAIN", "IDLE", "UIDPLUS", "MOVE", "NAMESPACE", "SPECIAL-USE",
            "LITERAL+", "ENABLE"]:
    assert cap in caps.split(), (cap, caps)
ok(m.noop(), "NOOP")
try:
    m.login("alice", "wrong")
    raise AssertionError("a wrong password was accepted")
except imaplib.IMAP4.error:
    pass
ok(m.login("alice", "secret"), "LOGIN")
ok(m._simple_command("ENABLE", "CONDSTORE"), "ENABLE")
ns = ok(m._simple_command("NAMESPACE"), "NAMESPACE")

# Mailboxes: LIST with special use, CREATE, RENAME, DELETE, SUBSCRIBE, LSUB, STATUS.
listing = b"\n".join(ok(m.list(), "LIST"))
for folder, use in [(b"Sent", b"\\Sent"), (b"Drafts", b"\\Drafts"), (b"Trash", b"\\Trash"),
                    (b"Junk", b"\\Junk")]:
    assert re.search(rb"\(.*" + re.escape(use) + rb".*\) \".\" \"" + folder + rb"\"", listing), listing
ok(m.create("Projects"), "CREATE")
ok(m.create("Projects.2026"), "CREATE child")
ok(m.rename("Projects", "Archive"), "RENAME")
listing = b"\n".join(ok(m.list('""', "Archive*"), "LIST pattern"))
assert b'"Archive.2026"' in listing and b'"Archive"' in listing, listing
ok(m.subscribe("Archive"), "SUBSCRIBE")
lsub = b"\n".join(ok(m.lsub(), "LSUB"))
assert b'"Archive"' in lsub, lsub
ok(m.unsubscribe("Archive"), "UNSUBSCRIBE")
assert b'"Archive"' not in b"\n".join(x or b"" for x in ok(m.lsub(), "LSUB after"))
ok(m.delete("Archive.2026"), "DELETE")
assert m.select("Archive.2026")[0] == "NO"
status = ok(m.status("INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)"), "STATUS")[0]
assert b"MESSAGES 2" in status and b"UNSEEN 2" in status and b"UIDNEXT 3" in status, status

# APPEND with flags and a date; UIDPLUS answers APPENDUID.
typ, data = m.append("Drafts", "(\\Draft \\Seen)", imaplib.Time2Internaldate(1700000000),
                     b"Subject: draft\r\n\r\nnot yet\r\n")
assert typ == "OK" and b"APPENDUID" in data[0], data

# EXAMINE is read-only; SELECT is read-write.
ok(m.select("INBOX", readonly=True), "EXAMINE")
assert m.store("1", "+FLAGS", "(\\Seen)")[0] == "NO"
count = int(ok(m.select("INBOX"), "SELECT")[0])
assert count == 2, count

# FETCH of every data item the issue names.
data = ok(m.fetch("1", "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)"), "FETCH")
head = data[0] if isinstance(data[0], bytes) else data[0][0]
assert b"UID 1" in head and b"RFC822.SIZE" in head and b"INTERNALDATE \"" in head, head
assert b'ENVELOPE ("Tue, 1 Dec 2026 10:00:00 +0000" "hello" (("Lena" NIL "lena" "sender.example"))' in head, head
data = ok(m.fetch("2", "(BODYSTRUCTURE)"), "FETCH BODYSTRUCTURE")
assert b'"MIXED" ("BOUNDARY" "XYZ")' in data[0] and b'"CSV"' in data[0], data
data = ok(m.fetch("2", "(BODY.PEEK[2] BODY.PEEK[1.MIME] BODY.PEEK[HEADER.FIELDS (SUBJECT)])"), "FETCH sections")
parts = {item[0].split(b" {")[0].split(b"(")[-1].split(b" ")[-1]: item[1] for item in data if isinstance(item, tuple)}
assert parts[b"BODY[2]"] == b"region,total\r\nnorth,12\r\n", parts
assert any(k.startswith(b"BODY[HEADER.FIELDS") and v == b"Subject: quarterly figures\r\n\r\n" for k, v in parts.items()) or b"Subject: quarterly figures" in b"".join(v for v in parts.values()), parts
data = ok(m.fetch("1", "(BODY.PEEK[TEXT]<0.8>)"), "FETCH partial")
assert data[0][1] == b"line one", data
flags = ok(m.fetch("1", "(FLAGS)"), "FETCH FLAGS")[0]
assert b"\\Seen" not in flags, flags
data = ok(m.fetch("1", "(BODY[])"), "FETCH BODY[]")
assert data[0][1].endswith(b".hidden line\r\n"), data
flags = b" ".join(x if isinstance(x, bytes) else x[0] for x in ok(m.fetch("1", "(FLAGS)"), "FLAGS"))
assert b"\\Seen" in flags, flags
data = ok(m.uid("FETCH", "1:*", "(UID RFC822.HEADER)"), "UID FETCH")
assert b"UID 1" in data[0][0] and b"Subject: hello" in data[0][1], data

# SEARCH: flags, dates, headers, text, UID sets.
def search(*criteria, uid=False):
    if uid:
        return ok(m.uid("SEARCH", *criteria), "UID SEARCH %r" % (criteria,))[0].split()
    return ok(m.search(None, *criteria), "SEARCH %r" % (criteria,))[0].split()
assert search("SEEN") == [b"1"]
assert search("UNSEEN") == [b"2"]
assert search("FROM", "lena") == [b"1", b"2"]
assert search("SUBJECT", "quarterly") == [b"2"]
assert search("HEADER", "To", "alice@office.example") == [b"1", b"2"]
assert search("BODY", "north,12") == [b"2"]
assert search("TEXT", "hidden") == [b"1"]
assert search("SENTSINCE", "1-Dec-2026") == [b"1"]
assert search("SENTBEFORE", "1-Dec-2026") == []
assert search("SINCE", "1-Jan-2020") == [b"1", b"2"]
assert search("BEFORE", "1-Jan-2020") == []
assert search("LARGER", "10", "NOT", "DELETED") == [b"1", b"2"]
assert search("OR", "SEEN", "SUBJECT", "quarterly") == [b"1", b"2"]
assert search("UID", "2:*", uid=True) == [b"2"]
assert search("1:2", "UNANSWERED") == [b"1", b"2"]

# STORE, COPY, MOVE with UIDPLUS codes, EXPUNGE.
data = ok(m.store("2", "+FLAGS", "(\\Flagged \\Answered)"), "STORE")
assert b"\\Flagged" in data[0] and b"\\Answered" in data[0], data
assert search("FLAGGED") == [b"2"] and search("ANSWERED") == [b"2"]
ok(m.store("2", "-FLAGS.SILENT", "(\\Answered)"), "STORE SILENT")
typ, data = m.copy("1", "Sent")
assert typ == "OK" and b"COPYUID" in data[0], data
typ, data = m.uid("MOVE", "2", "Junk")
assert typ == "OK", data
assert int(ok(m.select("Junk"), "SELECT Junk")[0]) == 1
assert search("FLAGGED") == [b"1"]
ok(m.check(), "CHECK")
ok(m.store("1", "+FLAGS", "(\\Deleted)"), "STORE Deleted")
data = ok(m.expunge(), "EXPUNGE")
assert data == [b"1"], data
ok(m.select("Sent"), "SELECT Sent")
ok(m.store("1", "+FLAGS", "(\\Deleted)"), "STORE Deleted")
ok(m.close(), "CLOSE")
assert ok(m.status("Sent", "(MESSAGES)"), "STATUS Sent")[0].endswith(b"(MESSAGES 0)")
ok(m.select("INBOX"), "SELECT INBOX")
ok(m._simple_command("UNSELECT"), "UNSELECT")
typ, data = m.logout()
assert typ == "BYE", (typ, data)
print("imaplib session: all commands ok")
