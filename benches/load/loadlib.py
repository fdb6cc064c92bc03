"""Helpers shared by the load scripts in benches/load (Python 3 stdlib only)."""

import ipaddress
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid


def loopback_only(url):
    """Exits unless `url` points at this machine (a loopback address)."""
    host = urllib.parse.urlparse(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    sys.exit(f"refusing to load-test {host!r}: only loopback addresses are allowed")


def multipart(path):
    """A multipart/form-data body holding the file at `path`, and its type."""
    boundary = uuid.uuid4().hex
    name = os.path.basename(path)
    with open(path, "rb") as f:
        data = f.read()
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
        f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def post(url, body, ctype, timeout):
    """POSTs `body`; returns (seconds, HTTP status, 0 when no answer)."""
    req = urllib.request.Request(url, data=body, headers={"Content-Type": ctype}, method="POST")
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        e.read()
        status = e.code
    except (urllib.error.URLError, socket.timeout, ConnectionError):
        status = 0
    return time.perf_counter() - t, status


def pct(xs, q):
    """The q-quantile (0..1) of `xs`, nearest rank; NaN when empty."""
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, int(round(q * (len(xs) - 1)))))
    return xs[k]


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"
