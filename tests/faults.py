"""Fault injection for the atomicity tests: shard functions that die the way real workers die."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from generator.parts import make_part


def die_on_shard_two(gen, shard, root, run_id, partition_by, *rest):
    """Behave normally, except on shard 2: leave a half-written temp file, then be SIGKILLed."""
    if shard.index == 2:
        tmp = Path(root) / "events" / f".part-{shard.index:05d}-{run_id}.parquet.{os.getpid()}.tmp"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(b"PAR1 half a part")
        os.kill(os.getpid(), signal.SIGKILL)
    return make_part(gen, shard, root, run_id, partition_by, *rest)


def busy_shard(root: str, index: int) -> bytes:
    """A shard's stand-in that marks it started, takes a moment, marks it finished and answers with a result of
    some size."""
    (Path(root) / f"started-{index}").touch()
    time.sleep(0.3)
    (Path(root) / f"finished-{index}").touch()
    return bytes(200_000)


class FaultyProxy:
    """An HTTP proxy on loopback in front of an S3 server that fails some write requests the way S3 and networks
    do: every `every`-th PUT or POST gets 503 SlowDown, or (alternately) its connection dropped after the request
    body was read. Optionally slows writes by `delay` seconds, or denies everything (403) with `deny`. Reads
    pass through."""

    SLOW_DOWN = (
        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
        b"<Message>Please reduce your request rate.</Message></Error>"
    )

    DENIED = (
        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
        b"<Message>Access Denied</Message></Error>"
    )

    def __init__(self, upstream: str, every: int = 4, delay: float = 0.0, deny: bool = False):
        import http.client
        import http.server
        import threading
        from urllib.parse import urlsplit

        target = urlsplit(upstream)
        proxy = self
        self.every, self.delay, self.deny = every, delay, deny
        self.writes = self.failed = self.dropped = 0
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy.deny:  # a policy that does not let us in
                    self.send_response(403)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(proxy.DENIED)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(proxy.DENIED)
                    return
                if self.command in ("PUT", "POST"):
                    with proxy.lock:
                        proxy.writes += 1
                        n = proxy.writes
                    if proxy.delay:
                        import time

                        time.sleep(proxy.delay)
                    if proxy.every and n % proxy.every == 0:
                        if (n // proxy.every) % 2:
                            with proxy.lock:
                                proxy.failed += 1
                            self.send_response(503)
                            self.send_header("Content-Type", "application/xml")
                            self.send_header("Content-Length", str(len(proxy.SLOW_DOWN)))
                            self.end_headers()
                            self.wfile.write(proxy.SLOW_DOWN)
                            return
                        with proxy.lock:
                            proxy.dropped += 1
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                upstream_conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
                upstream_conn.request(self.command, self.path, body=body, headers=headers)
                response = upstream_conn.getresponse()
                data = response.read()
                self.send_response(response.status)
                for k, v in response.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream_conn.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _relay

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for_first_report(gen, shard, root, run_id, partition_by, *rest):
    """Shards from the third on wait (up to 20 s) until the coordinator has reported a finished shard: proves the
    coordinator takes results as they come, not when all are done."""
    import time

    if shard.index >= 2:
        deadline = time.monotonic() + 20
        while not list(Path(root).parent.glob("reported-*")) and time.monotonic() < deadline:
            time.sleep(0.01)
        if not list(Path(root).parent.glob("reported-*")):
            raise RuntimeError("no shard was reported while others were still running")
    return make_part(gen, shard, root, run_id, partition_by, *rest)


def die_now(root: str) -> None:
    """Die abruptly, as the OOM killer or a segfault ends a worker, leaving a mark first."""
    (Path(root) / "died").touch()
    os.kill(os.getpid(), signal.SIGKILL)


def large_result_once_broken(size: int) -> bytes:
    """Wait until the pool, having seen another worker die, SIGTERMs this one in its cleanup (workers ignore
    that), then answer with `size` bytes: more than the result pipe holds, so sending them blocks until someone
    reads (a broken pool reads no more)."""
    terminated = []
    signal.signal(signal.SIGTERM, lambda *_: terminated.append(True))
    deadline = time.monotonic() + 10
    while not terminated and time.monotonic() < deadline:
        time.sleep(0.01)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return bytes(size)


def half_sent_result(root: str) -> None:
    """Send the first bytes of a result and never the rest, as a worker killed while sending its result leaves
    it; mark that, then wait to be killed."""
    import struct
    import sys

    result_queue = sys._getframe(1).f_locals["result_queue"]  # the pool's worker loop, which called this job
    os.write(result_queue._writer.fileno(), struct.pack("!i", 1_000_000) + bytes(100))
    (Path(root) / "half-sent").touch()
    time.sleep(3600)
