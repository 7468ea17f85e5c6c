# A scripted poplib session covering every POP3 command Postroom serves.
import poplib, ssl, sys

pop3s_port, pop3_port = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl._create_unverified_context()

# STLS on the plain port: USER only after it.
plain = poplib.POP3("127.0.0.1", pop3_port)
caps = plain.capa()
assert "STLS" in caps and "USER" not in caps, caps
try:
    plain.user("alice")
    raise AssertionError("USER accepted before TLS")
except poplib.error_proto:
    pass
plain.stls(context=ctx)
assert "USER" in plain.capa() and "SASL" in plain.capa()
plain.user("alice")
plain.pass_("secret")
assert plain.stat()[0] == 2
plain.quit()

p = poplib.POP3_SSL("127.0.0.1", pop3s_port, context=ctx)
caps = p.capa()
for cap in ["TOP", "UIDL", "USER", "SASL"]:
    assert cap in caps, caps
try:
    p.user("alice"); p.pass_("wrong")
    raise AssertionError("wrong password accepted")
except poplib.error_proto:
    pass
p.user("alice")
p.pass_("secret")
count, size = p.stat()
assert count == 2, (count, size)
resp, listing, _ = p.list()
assert len(listing) == 2, listing
resp, uidls, _ = p.uidl()
assert len(uidls) == 2 and uidls[0] != uidls[1], uidls
assert p.uidl(1).split()[2] == uidls[0].split()[1]
resp, lines, octets = p.retr(1)
assert lines[-1] == b".hidden line", lines  # poplib removes the stuffing dot
assert b"Subject: hello" in lines
resp, lines, _ = p.top(1, 0)
assert lines[-1] == b"" and b"Subject: hello" in lines, lines
resp, lines, _ = p.retr(2)
assert lines[0] == b"This message has no header section at all.", lines
p.noop()
p.dele(2)
p.rset()
p.dele(1)
assert p.stat()[0] == 1
try:
    p.retr(1)
    raise AssertionError("a deleted message was served")
except poplib.error_proto:
    pass
resp = p.quit()
assert resp.startswith(b"+OK"), resp
print("poplib session: all commands ok")
