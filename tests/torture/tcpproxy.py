"""A TCP-to-unix-socket proxy the fault campaign can cut or black-hole.

The test clusters listen on unix sockets only; the daemon reaches them
through one of these proxies (127.0.0.1:<port> -> <socket path>), so the
campaign can break the network between the daemon and a cluster without
touching either process:

* cut      - every open connection is closed abruptly (RST on the TCP side,
             the server sees its client vanish); new connections are welcome;
* hold     - black hole: nothing is forwarded in either direction, new
             connections are accepted but not connected upstream, until
* release  - forwarding resumes where it stopped (a partition that healed
             before any timeout), or a `cut` ends the hold as a partition that
             outlived the connections.

Run as a process (`python3 tcpproxy.py --unix PATH`): it prints
"listening <port>", then reads one command per line on stdin (cut, hold,
release, stats, quit) and answers one line per command on stdout.
`Proxy` is the parent's handle for such a process.
"""

import argparse
import os
import selectors
import socket
import struct
import subprocess
import sys

CHUNK = 256 * 1024
MAX_BUFFER = 4 * 1024 * 1024  # per direction: stop reading a side whose peer is this far behind


class Pair:
    """One proxied connection: the client's TCP socket and the server's unix socket."""

    def __init__(self, client):
        self.client, self.server = client, None
        self.to_server, self.to_client = bytearray(), bytearray()
        self.client_eof = self.server_eof = False


class ProxyLoop:
    def __init__(self, listen_host, listen_port, unix_path):
        self.unix_path = unix_path
        self.sel = selectors.DefaultSelector()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((listen_host, listen_port))
        self.listener.listen(128)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.pairs = set()
        self.held = False
        self.accepted = self.cuts = self.cut_conns = 0
        self.stdin_buf = b""
        self.running = True

    # ----------------------------------------------------------- plumbing
    def connect_upstream(self, pair):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.unix_path)
        except OSError:
            # The server is down: the client sees its connection refused-ish
            # (closed), as it would against the real server.
            s.close()
            self.close_pair(pair, abort=False)
            return
        s.setblocking(False)
        pair.server = s

    def close_pair(self, pair, abort):
        for s in (pair.client, pair.server):
            if s is None:
                continue
            try:
                self.sel.unregister(s)
            except (KeyError, ValueError):
                pass
            if abort and s.family == socket.AF_INET:
                # linger 0: close sends RST instead of FIN
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        pair.client = pair.server = None
        self.pairs.discard(pair)

    def interest(self, pair):
        """(client events, server events) this pair wants now."""
        if self.held or pair.server is None:
            return 0, 0
        ce = se = 0
        if not pair.client_eof and len(pair.to_server) < MAX_BUFFER:
            ce |= selectors.EVENT_READ
        if not pair.server_eof and len(pair.to_client) < MAX_BUFFER:
            se |= selectors.EVENT_READ
        if pair.to_client:
            ce |= selectors.EVENT_WRITE
        if pair.to_server:
            se |= selectors.EVENT_WRITE
        return ce, se

    def update(self, pair):
        if pair.client is None:
            return
        for s, ev in zip((pair.client, pair.server), self.interest(pair)):
            if s is None:
                continue
            try:
                if ev:
                    self.sel.modify(s, ev, pair)
                else:
                    self.sel.unregister(s)
            except KeyError:
                if ev:
                    self.sel.register(s, ev, pair)

    def pump(self, pair, sock, mask):
        client_side = sock is pair.client
        if mask & selectors.EVENT_READ:
            try:
                data = sock.recv(CHUNK)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                self.close_pair(pair, abort=True)
                return
            if data == b"":
                if client_side:
                    pair.client_eof = True
                else:
                    pair.server_eof = True
            elif data:
                (pair.to_server if client_side else pair.to_client).extend(data)
        if mask & selectors.EVENT_WRITE:
            buf = pair.to_client if client_side else pair.to_server
            try:
                n = sock.send(buf)
                del buf[:n]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self.close_pair(pair, abort=True)
                return
        # An orderly close on one side closes the whole connection once what
        # it sent is delivered (PostgreSQL connections do not half-close).
        if (pair.client_eof and not pair.to_server) or (pair.server_eof and not pair.to_client):
            self.close_pair(pair, abort=False)
            return
        self.update(pair)

    # ----------------------------------------------------------- commands
    def command(self, line):
        if line == "cut":
            n = len(self.pairs)
            for pair in list(self.pairs):
                self.close_pair(pair, abort=True)
            self.cuts += 1
            self.cut_conns += n
            self.held = False
            return "cut %d" % n
        if line == "hold":
            self.held = True
            for pair in self.pairs:
                self.update(pair)
            return "held %d" % len(self.pairs)
        if line == "release":
            self.held = False
            for pair in list(self.pairs):
                if pair.server is None:
                    self.connect_upstream(pair)
                self.update(pair)
            return "released %d" % len(self.pairs)
        if line == "stats":
            return "accepted %d open %d cuts %d cut_conns %d held %d" % (
                self.accepted, len(self.pairs), self.cuts, self.cut_conns, int(self.held))
        if line == "quit":
            self.running = False
            return "bye"
        return "error unknown command %r" % line

    def on_stdin(self):
        data = os.read(0, 4096)
        if not data:
            self.running = False
            return
        self.stdin_buf += data
        while b"\n" in self.stdin_buf:
            line, self.stdin_buf = self.stdin_buf.split(b"\n", 1)
            sys.stdout.write(self.command(line.decode().strip()) + "\n")
            sys.stdout.flush()

    def on_accept(self):
        try:
            client, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        client.setblocking(False)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair = Pair(client)
        self.pairs.add(pair)
        self.accepted += 1
        if not self.held:
            self.connect_upstream(pair)
        self.update(pair)

    def run(self):
        self.sel.register(self.listener, selectors.EVENT_READ, "accept")
        self.sel.register(0, selectors.EVENT_READ, "stdin")
        sys.stdout.write("listening %d\n" % self.port)
        sys.stdout.flush()
        while self.running:
            for key, mask in self.sel.select():
                if key.data == "accept":
                    self.on_accept()
                elif key.data == "stdin":
                    self.on_stdin()
                elif key.data.client is not None:
                    self.pump(key.data, key.fileobj, mask)
        for pair in list(self.pairs):
            self.close_pair(pair, abort=True)


class Proxy:
    """Parent-side handle: start the proxy process, send it commands."""

    def __init__(self, unix_path, name):
        self.name = name
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--unix", unix_path],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        first = self.proc.stdout.readline().split()
        if len(first) != 2 or first[0] != "listening":
            raise RuntimeError("proxy %s did not start: %r" % (name, first))
        self.port = int(first[1])

    def send(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().strip()
        if not reply or reply.startswith("error"):
            raise RuntimeError("proxy %s: %s -> %r" % (self.name, cmd, reply))
        return reply

    def cut(self):
        return int(self.send("cut").split()[1])

    def hold(self):
        return self.send("hold")

    def release(self):
        return self.send("release")

    def stats(self):
        return self.send("stats")

    def close(self):
        if self.proc.poll() is None:
            try:
                self.send("quit")
            except (RuntimeError, OSError):
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:0", help="host:port to listen on (port 0: any)")
    ap.add_argument("--unix", required=True, help="path of the server's unix socket")
    args = ap.parse_args()
    host, port = args.listen.rsplit(":", 1)
    ProxyLoop(host, int(port), args.unix).run()


if __name__ == "__main__":
    main()
