"""The same-origin guard: an ASGI layer outside all of Gradio that refuses what another web page
in the same browser could send, and what the app never needs.

Why it exists: browsers share cookies across ports, and Gradio's CORS layer answers any
``http://127.0.0.1:*`` page with credentials allowed, so a page on another loopback port (a dev
server, a notebook, a package's web view) could act as the signed-in user, and in
single-researcher mode (no sign-in) read every session. The guard, per HTTP request:

* refuses a ``Host`` that is not the bound address or a configured public name (DNS rebinding);
* refuses an ``Origin`` that is not the app's own (``null`` included), or, without one, a
  ``Referer`` or ``Sec-Fetch-Site`` saying another site or port sent it; a link to the start page
  from elsewhere (a top-level navigation) is the one exception. Clients that send none of these
  headers are not browsers and so cannot be a confused deputy;
* refuses routes the app does not use: uploads (no component takes files), monitoring, the
  FastAPI schema, websockets;
* throttles ``POST /login`` per client address (429 with ``Retry-After``) and hands the address to
  the sign-in check (``CLIENT_ADDRESS``);
* strips every ``Access-Control-*`` response header (same-origin pages need none), rewrites the
  session cookies to ``SameSite=Strict``, and adds no-sniff / no-framing / no-referrer headers;
* writes an ``http.refused`` audit row for each refusal and for each 4xx answer the app gives,
  at most ``AUDIT_PER_MINUTE`` a minute (a hostile page must not fill the append-only log), with a
  count of the ones left out.

It is installed by ``guard_lifespan``, which Gradio's ``launch(app_kwargs={"lifespan": ...})``
runs after Starlette has built its middleware stack; wrapping that stack puts the guard outside
Gradio's CORS middleware, which a normal ``add_middleware`` call could not.
"""
from __future__ import annotations

import contextvars
import ipaddress
import json
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from vocabulary import EventKind

# The client address of the request being served, read by the sign-in check (ui/access.py).
CLIENT_ADDRESS: contextvars.ContextVar[str | None] = contextvars.ContextVar("theralab_client", default=None)

# Routes nobody may call: the app has no file inputs, no monitoring and no published schema.
BLOCKED_PREFIXES = ("/gradio_api/upload", "/gradio_api/upload_progress", "/gradio_api/process_recording", "/gradio_api/component_server",
                    "/monitoring", "/gradio_api/monitoring", "/openapi.json", "/gradio_api/openapi.json",
                    "/docs", "/redoc", "/gradio_api/mcp", "/mcp")
# A link from elsewhere may open these (not /logout: a page could then sign the user out).
START_PAGES = ("/", "/login")
AUDIT_PER_MINUTE = 30
_DROP_HEADERS = (b"access-control-",)
_SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                     (b"referrer-policy", b"same-origin"),
                     (b"content-security-policy", b"frame-ancestors 'none'")]


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _host_port(text: str, scheme: str = "http") -> str | None:
    """``name:port`` in lower case, the port filled in from the scheme; None when unreadable."""
    try:
        parts = urlsplit(f"{scheme}://{text}")
        name, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not name:
        return None
    if ":" in name:  # an IPv6 literal keeps its brackets, as in a Host header
        name = f"[{name}]"
    return f"{name.lower()}:{port or _default_port(scheme)}"


def _origin_of(url: str) -> str | None:
    """``scheme://name:port`` of a URL (Origin or Referer), ports filled in; None when unreadable."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    hp = _host_port(parts.netloc.rsplit("@", 1)[-1], parts.scheme)
    return f"{parts.scheme}://{hp}" if hp else None


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class OriginPolicy:
    """Which Host headers and which origins are the app's own."""
    hosts: frozenset[str]    # "name:port"
    origins: frozenset[str]  # "scheme://name:port"

    @classmethod
    def for_bind(cls, host: str, port: int, public_urls: str = "") -> "OriginPolicy":
        """The bound address (and its loopback aliases when it is loopback or every interface:
        Gradio probes itself on ``localhost``), plus each configured public URL, for example the
        ``https://theralab.example.org`` of a TLS reverse proxy."""
        names = {host.lower()} - {"0.0.0.0", "::"}
        if _is_loopback(host) or host in ("0.0.0.0", "::"):
            names |= {"127.0.0.1", "localhost", "::1"}
        hosts = {f"[{n}]:{port}" if ":" in n and not n.startswith("[") else f"{n}:{port}" for n in names}
        origins = {f"http://{h}" for h in hosts}
        for url in filter(None, (u.strip() for u in public_urls.split(","))):
            origin = _origin_of(url)
            if origin is None:
                raise ValueError(f"public_url {url!r} is not an http(s) URL")
            origins.add(origin)
            hosts.add(origin.split("://", 1)[1])
        return cls(frozenset(hosts), frozenset(origins))

    def host_ok(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        return any(_host_port(host_header, scheme) in self.hosts for scheme in ("http", "https"))

    def origin_ok(self, origin: str) -> bool:
        return _origin_of(origin) in self.origins


class _RefusalLog:
    """Audit rows for refusals, at most ``per_minute`` a minute; the rest are counted."""

    def __init__(self, audit, per_minute: int = AUDIT_PER_MINUTE, clock=time.monotonic):
        self.audit, self.per_minute, self.clock = audit, per_minute, clock
        self.window_start, self.written, self.left_out = clock(), 0, 0
        self.lock = threading.Lock()

    def record(self, **detail) -> None:
        if self.audit is None:
            return
        with self.lock:
            now = self.clock()
            if now - self.window_start >= 60:
                self.window_start, self.written = now, 0
            if self.written >= self.per_minute:
                self.left_out += 1
                return
            self.written += 1
            left_out, self.left_out = self.left_out, 0
        if left_out:
            detail["not_audited_before_this"] = left_out
        try:
            self.audit.record(detail.pop("actor", "anonymous"), EventKind.HTTP_REFUSED, None, **detail)
        except Exception:  # an audit failure must not turn a refusal into a crash
            pass


def _headers(scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in scope.get("headers", []):
        out.setdefault(key.decode("latin-1").lower(), value.decode("latin-1"))
    return out


class Guard:
    """The ASGI wrapper; ``app`` is what it protects (Gradio's whole middleware stack)."""

    def __init__(self, app, policy: OriginPolicy, audit=None, throttle=None, tokens: dict | None = None):
        self.app, self.policy, self.throttle = app, policy, throttle
        self.tokens = tokens if tokens is not None else {}  # Gradio's session token -> username
        self.refusals = _RefusalLog(audit)

    def caller(self, headers: dict[str, str]) -> str:
        """Who a request's session cookie belongs to, for the audit row of a refusal."""
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name.startswith("access-token-") and value in self.tokens:
                return str(self.tokens[value])
        return "anonymous"

    def refusal(self, scope, headers: dict[str, str]) -> tuple[int, str] | None:
        """(status, reason) when this request must not reach the app."""
        path = scope.get("path", "")
        if not self.policy.host_ok(headers.get("host")):
            return 403, "host not allowed"
        if any(path == p or path.startswith(p + "/") for p in BLOCKED_PREFIXES):
            return 403, "route not available"
        if "origin" in headers:
            return None if self.policy.origin_ok(headers["origin"]) else (403, "cross-origin request")
        navigation = (scope.get("method") in ("GET", "HEAD") and headers.get("sec-fetch-mode") == "navigate"
                      and path in START_PAGES)
        if headers.get("sec-fetch-site") in ("cross-site", "same-site") and not navigation:
            return 403, "cross-site request"
        referer = headers.get("referer")
        if referer and not navigation and _origin_of(referer) not in self.policy.origins:
            return 403, "cross-origin referer"
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self.app(scope, receive, send)
        headers = _headers(scope)
        client = (scope.get("client") or ("", 0))[0] or None
        if scope["type"] != "http":
            self.refusals.record(path=scope.get("path", "")[:200], reason="websocket", address=client)
            await send({"type": "websocket.close", "code": 1008})
            return
        refused = self.refusal(scope, headers)
        if refused is not None:
            status, reason = refused
            self.refusals.record(actor=self.caller(headers), path=scope.get("path", "")[:200], reason=reason,
                                 method=str(scope.get("method", ""))[:10], address=client,
                                 origin=headers.get("origin", headers.get("referer", ""))[:200],
                                 host=headers.get("host", "")[:200])
            await _respond(send, status, f"Refused: {reason}.")
            return
        wait = self._sign_in_wait(scope, client)
        if wait > 0:
            await _respond(send, 429, "Too many sign-in attempts. Try again later.",
                           [(b"retry-after", str(int(wait) + 1).encode())])
            self.refusals.record(path="/login", reason="sign-in throttled", address=client)
            return
        token = CLIENT_ADDRESS.set(client)
        try:
            await self.app(scope, receive, self._sending(scope, send, client, headers))
        finally:
            CLIENT_ADDRESS.reset(token)

    def _sign_in_wait(self, scope, client) -> float:
        """Seconds this address must wait before signing in again (0 for any other request)."""
        if self.throttle is None or scope.get("method") != "POST" or scope.get("path", "").rstrip("/") != "/login":
            return 0.0
        return self.throttle.check(None, client)

    def _sending(self, scope, send, client, headers):
        async def wrapped(message):
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = _clean_headers(message.get("headers", []))
                status = message.get("status", 200)
                path = scope.get("path", "")
                # Failed sign-ins have their own audit rows (store/signin.py); a 404 is a typo.
                if 400 <= status < 500 and status != 404 and path.rstrip("/") != "/login":
                    self.refusals.record(actor=self.caller(headers), path=path[:200],
                                         reason=f"answered {status}", address=client)
            await send(message)
        return wrapped


def _clean_headers(headers) -> list:
    out = []
    for key, value in headers:
        lower = key.lower()
        if lower.startswith(_DROP_HEADERS):
            continue
        if lower == b"set-cookie":
            value = _strict_cookie(value)
        out.append((key, value))
    present = {k.lower() for k, _ in out}
    out += [(k, v) for k, v in _SECURITY_HEADERS if k not in present]
    return out


def _strict_cookie(value: bytes) -> bytes:
    parts = [p.strip() for p in value.split(b";")]
    kept = [p for p in parts if not p.lower().startswith(b"samesite")]
    return b"; ".join(kept + [b"SameSite=strict"])


async def _respond(send, status: int, text: str, extra: list | None = None) -> None:
    body = json.dumps({"detail": text}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *_SECURITY_HEADERS, *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


def guard_lifespan(policy: OriginPolicy, audit=None, throttle=None, on_start=None):
    """A lifespan for ``launch(app_kwargs={"lifespan": ...})`` that puts ``Guard`` outermost."""
    @asynccontextmanager
    async def lifespan(app):
        app.middleware_stack = Guard(app.middleware_stack, policy, audit, throttle, getattr(app, "tokens", None))
        if on_start is not None:
            on_start(app)
        yield
    return lifespan


def hide_api_description(app) -> None:
    """Empty the API description Gradio embeds in every page, the sign-in page included (it listed
    every endpoint with example values: persona and model ids, paths of study files). Clients
    that sign in still read ``/gradio_api/info``, which Gradio serves only after sign-in."""
    pages = getattr(app.get_blocks(), "config", {}).get("page", {"": {}})
    for page in pages:
        for all_endpoints in (False, True):
            app.page_api_info[(page, all_endpoints)] = {"named_endpoints": {}, "unnamed_endpoints": {}}
