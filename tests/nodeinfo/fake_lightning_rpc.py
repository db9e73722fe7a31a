#!/usr/bin/python3
"""A stand-in for lightningd's JSON-RPC socket (lightning-rpc): a unix stream socket that
answers getinfo, as CLN does, with one JSON object and keeps the connection open.

Used as a module by test_nodeinfo.py (class FakeRpc), or alone:

  fake_lightning_rpc.py SOCKET [--id HEX] [--alias A] [--network N] [--version V]
                        [--mode MODE] [--delay S] [--chunks N]

MODE says how it answers:
  ok         {"jsonrpc":"2.0","id":<the request's>,"result":{id, alias, network, version, ...}}
  error      an error object (code -32601... as lightningd answers a failed command)
  garbage    bytes that are not JSON
  noresult   valid JSON without "result"
  wrongid    a result for another request id
  huge       a result padded past 1 MiB
  badutf8    an alias with invalid UTF-8 and a control character
  silent     never answers
  hangup     closes the connection at once
--delay waits before answering; --chunks splits the answer into N pieces sent 50 ms apart
(lightningd's answers are not newline-terminated and may arrive in pieces).
"""
import argparse
import json
import os
import signal
import socket
import sys
import threading
import time

NODE_A = "02" + "a1" * 32
NODE_B = "03" + "b2" * 32


class FakeRpc:
    def __init__(self, path, node_id=NODE_A, alias="FAKENODE", network="regtest",
                 version="v24.11", mode="ok", delay=0.0, chunks=1, owner=None):
        self.path = path
        self.owner = owner  # (uid, gid) of the socket file, as a node run by another user
        self.node_id, self.alias, self.network, self.version = node_id, alias, network, version
        self.mode, self.delay, self.chunks = mode, delay, chunks
        self.requests = []  # parsed requests, in order
        self.connections = 0
        self.lock = threading.Lock()
        self.sock = None
        self.conns = []
        self.stopping = False

    def start(self):
        if os.path.lexists(self.path):
            os.unlink(self.path)
        self.stopping = False
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        d, name = os.path.split(self.path)
        if len(self.path.encode()) >= 108:
            # lightningd binds a relative name in its directory; so do we for long paths.
            cwd = os.getcwd()
            os.chdir(d)
            try:
                self.sock.bind(name)
            finally:
                os.chdir(cwd)
        else:
            self.sock.bind(self.path)
        os.chmod(self.path, 0o600)
        if self.owner:
            os.chown(self.path, *self.owner)
        self.sock.listen(16)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """lightningd going away: listening socket and connections closed, file removed."""
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()
            self.conns = []
        if os.path.lexists(self.path):
            os.unlink(self.path)

    def _accept(self):
        sock = self.sock
        while not self.stopping:
            try:
                c, _ = sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def answer(self, req_id):
        if self.mode == "error":
            return json.dumps({"jsonrpc": "2.0", "id": req_id,
                               "error": {"code": -32601, "message": "Unknown command 'getinfo'"}})
        if self.mode == "garbage":
            return "<html>this is not JSON</html>"
        if self.mode == "noresult":
            return json.dumps({"jsonrpc": "2.0", "id": req_id})
        result = {"id": self.node_id, "alias": self.alias, "color": "02a1a1",
                  "num_peers": 0, "num_pending_channels": 0, "num_active_channels": 0,
                  "num_inactive_channels": 0, "address": [], "binding": [],
                  "version": self.version, "blockheight": 110, "network": self.network,
                  "fees_collected_msat": 0, "lightning-dir": os.path.dirname(self.path),
                  "our_features": {"init": "08a0000a8a5961", "node": "88a0000a8a5961"}}
        if self.mode == "wrongid":
            req_id = "someone-else#7"
        if self.mode == "huge":
            result["padding"] = "x" * (1 << 20)
        text = json.dumps({"jsonrpc": "2.0", "id": req_id, "result": result})
        if self.mode == "badutf8":
            bad = json.dumps({"jsonrpc": "2.0", "id": req_id,
                              "result": dict(result, alias="@@ALIAS@@")})
            return bad.encode().replace(b"@@ALIAS@@", b"ok\xff\xfe\\u0007end")
        return text

    def _serve(self, c):
        buf = b""
        dec = json.JSONDecoder()
        try:
            if self.mode == "hangup":
                c.close()
                return
            while not self.stopping:
                data = c.recv(65536)
                if not data:
                    return
                buf += data
                try:
                    req, end = dec.raw_decode(buf.decode())
                except ValueError:
                    continue  # not complete yet
                buf = buf[end:].lstrip()
                with self.lock:
                    self.requests.append(req)
                if self.mode == "silent":
                    continue
                if self.delay:
                    time.sleep(self.delay)
                out = self.answer(req.get("id"))
                if isinstance(out, str):
                    out = out.encode()
                out += b"\n\n"  # as lightningd ends its answers
                n = max(1, self.chunks)
                step = (len(out) + n - 1) // n
                for i in range(0, len(out), step):
                    c.sendall(out[i:i + step])
                    if n > 1:
                        time.sleep(0.05)
        except OSError:
            return


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("socket")
    ap.add_argument("--id", default=NODE_A)
    ap.add_argument("--alias", default="FAKENODE")
    ap.add_argument("--network", default="regtest")
    ap.add_argument("--version", default="v24.11")
    ap.add_argument("--mode", default="ok")
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--chunks", type=int, default=1)
    a = ap.parse_args()
    rpc = FakeRpc(a.socket, a.id, a.alias, a.network, a.version, a.mode, a.delay,
                  a.chunks).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"listening on {a.socket}", file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        rpc.stop()


if __name__ == "__main__":
    main()
