# An IDLE client on a raw TLS socket: logs in, selects INBOX, idles, prints "idling", waits for
# "go" on stdin, then measures how long the server takes to announce a new message.
import socket, ssl, sys, time

port = int(sys.argv[1])
user = sys.argv[2] if len(sys.argv) > 2 else "alice"
password = sys.argv[3] if len(sys.argv) > 3 else "secret"
ctx = ssl._create_unverified_context()
sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10))
f = sock.makefile("rb")

def until(prefix):
    while True:
        line = f.readline()
        if not line:
            sys.exit("connection closed")
        if line.startswith(prefix):
            return line

until(b"* OK")
sock.sendall(b"a LOGIN %s %s\r\n" % (user.encode(), password.encode())); until(b"a OK")
sock.sendall(b"b SELECT INBOX\r\n"); until(b"b OK")
sock.sendall(b"c IDLE\r\n"); until(b"+")
print("idling", flush=True)
sys.stdin.readline()
start = time.monotonic()
while True:
    line = f.readline()
    if not line:
        sys.exit("connection closed while idling")
    if line.startswith(b"* ") and line.rstrip().endswith(b"EXISTS"):
        break
elapsed = time.monotonic() - start
sock.sendall(b"DONE\r\n"); until(b"c OK")
sock.sendall(b"d LOGOUT\r\n")
print("exists after %.3f" % elapsed, flush=True)
