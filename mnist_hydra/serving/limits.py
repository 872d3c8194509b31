"""What the server holds to, whoever sends what: who may ask, how much, how long, how many at
once. A request that breaks a rule gets one line of JSON and a 4xx status; the server goes on.

- Host: only the address served (and its loopback names) may be named in the Host header, so
  that a page that rebinds its own DNS name to 127.0.0.1 cannot read /model or post to /predict.
- Origin: a browser's request from another site's page is refused (the page's own requests,
  and API clients that send no Origin, go through), so another site cannot use the server.
- Bytes and pixels: an upload over `max_bytes` is refused by its declared length or once read
  past it; an image over `max_pixels` by its header, before it is decoded (JPEGs are decoded
  smaller when they can be: data/images.py).
- Time: a request's head must arrive within `timeout` seconds of the connection opening or of
  its last answer, and its body within `timeout` seconds of its head (408).
- At once: `decoders` images are decoded at the same time at most, and `max_connections`
  connections are served (uvicorn answers 503 past that), which bounds the memory in use.
"""

import json
from typing import NamedTuple

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


class Limits(NamedTuple):
    hosts: tuple[str, ...] = LOOPBACK_NAMES  # names the Host header may give; ("*",): any
    max_bytes: int = 5_000_000
    max_pixels: int = 4_000_000
    timeout: float = 10.0
    decoders: int = 2
    max_connections: int = 64


def allowed_hosts(host: str) -> tuple[str, ...]:
    """The names a client may use for the served address: the address itself and, for a
    loopback address, the loopback names; any name when it listens on every interface."""
    if host in ("0.0.0.0", "::", ""):
        return ("*",)
    return tuple(dict.fromkeys((host, *LOOPBACK_NAMES))) if host in LOOPBACK_NAMES else (host,)


def host_name(host_header: str) -> str:
    """`127.0.0.1` of `127.0.0.1:8000`, `::1` of `[::1]:8000`."""
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class SameSiteOnly:
    """ASGI middleware: refuse a request whose Host the server does not answer to (421), or
    whose Origin is another site (403). Refused before the app sees it, in one line of JSON."""

    def __init__(self, app, hosts: tuple[str, ...]):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]
        }
        host, origin = headers.get("host", ""), headers.get("origin")
        if "*" not in self.hosts and host_name(host) not in self.hosts:
            return await _refuse(
                send, 421, f"Host {host!r} is not this server's address: use {self.hosts[0]}"
            )
        if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
            return await _refuse(send, 403, f"a request from another site's page ({origin}) is refused")
        return await self.app(scope, receive, send)


async def _refuse(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
