"""Real servers on 127.0.0.1 for the remote-input tests: moto's standalone S3 server, a fault
proxy in front of it, and a static HTTP server that honours Range requests."""

from __future__ import annotations

import http.client
import http.server
import logging
import os
import re
import threading
from pathlib import Path

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",  # never probe for instance credentials
}


class MotoS3:
    """moto's ThreadedMotoServer on a free port, and a boto3 client for setting up buckets."""

    def __init__(self):
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.host, self.port = host, port
        self.endpoint = f"http://{host}:{port}"
        import boto3

        self.client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")

    def stop(self):
        self._server.stop()

    def bucket(self, name: str) -> str:
        self.client.create_bucket(Bucket=name)
        return name

    def upload(self, bucket: str, root: Path, prefix: str = "") -> None:
        """Every file under ``root``, keyed by its relative path."""
        for path in sorted(root.rglob("*")):
            if path.is_file():
                key = prefix + path.relative_to(root).as_posix()
                self.client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())


class FaultProxy(http.server.ThreadingHTTPServer):
    """Forwards every request to the S3 server, except where told to fail:

    - ``fail_first``: answer the next N requests with a 500 InternalError;
    - ``cut_bodies`` (key substring -> times): send an object's headers and half its body, then
      close the connection;
    - ``deny``: key substrings answered with 403 AccessDenied;
    - ``delete_after_listing``: (bucket, key) deleted from the server right after the first
      listing has been answered: the key vanishes between listing and reading.
    """

    daemon_threads = True

    def __init__(self, upstream: MotoS3):
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream = upstream
        self.endpoint = f"http://127.0.0.1:{self.server_address[1]}"
        self.lock = threading.Lock()
        self.fail_first = 0
        self.cut_bodies: dict[str, int] = {}
        self.deny: set[str] = set()
        self.delete_after_listing: tuple[str, str] | None = None
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header) of each request
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    def stop(self):
        self.shutdown()
        self.server_close()


def _s3_error(code: str, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message>'
        "<RequestId>proxy</RequestId></Error>"
    ).encode()


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultProxy

    def log_message(self, format, *args):  # quiet
        pass

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _forward(self) -> None:
        proxy = self.server
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        with proxy.lock:
            proxy.requests.append((self.command, self.path, self.headers.get("Range")))
            fail = proxy.fail_first > 0
            if fail:
                proxy.fail_first -= 1
            cut = next((k for k, n in proxy.cut_bodies.items() if k in self.path and n > 0), None)
            if cut is not None and self.command == "GET":
                proxy.cut_bodies[cut] -= 1
            else:
                cut = None
        if fail:
            self._reply(500, _s3_error("InternalError", "We encountered an internal error. Please try again."))
            return
        if any(k in self.path for k in proxy.deny):
            self._reply(403, _s3_error("AccessDenied", "Access Denied"), {"Content-Type": "application/xml"})
            return
        upstream = http.client.HTTPConnection(proxy.upstream.host, proxy.upstream.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "content-length")}
        upstream.request(self.command, self.path, body=body, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        upstream.close()
        passed = {
            k: v
            for k, v in response.getheaders()
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date")
        }
        if cut is not None and response.status in (200, 206) and len(data) > 1:
            # The headers promise the whole body; half of it comes, then the connection closes.
            self.send_response(response.status)
            for k, v in passed.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if self.command == "HEAD":  # no body, but the object's length
            self.send_response(response.status)
            for k, v in passed.items():
                self.send_header(k, v)
            self.send_header("Content-Length", response.getheader("Content-Length", "0"))
            self.end_headers()
            return
        self._reply(response.status, data, passed)
        listing = self.command == "GET" and re.search(r"[?&](list-type=2|prefix=|delimiter=)", self.path)
        if listing and proxy.delete_after_listing is not None:
            bucket, key = proxy.delete_after_listing
            proxy.delete_after_listing = None
            proxy.upstream.client.delete_object(Bucket=bucket, Key=key)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward


class RangeHTTPServer(http.server.ThreadingHTTPServer):
    """Serves the files of a directory, honouring single ``Range: bytes=a-b`` requests (as web
    servers and CDNs do; Python's SimpleHTTPRequestHandler does not)."""

    daemon_threads = True

    def __init__(self, root: Path):
        super().__init__(("127.0.0.1", 0), _RangeHandler)
        self.root = root
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    def stop(self):
        self.shutdown()
        self.server_close()


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RangeHTTPServer

    def log_message(self, format, *args):
        pass

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = self.server.root / self.path.lstrip("/").split("?")[0]
        if not path.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = path.read_bytes()
        status = 200
        headers = {"Accept-Ranges": "bytes", "ETag": f'"{os.stat(path).st_mtime_ns:x}-{len(data):x}"'}
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if match:
            start = int(match.group(1))
            stop = min(len(data), int(match.group(2)) + 1) if match.group(2) else len(data)
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{len(data)}"
            data = data[start:stop]
            status = 206
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(data)
