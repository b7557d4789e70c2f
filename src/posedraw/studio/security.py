"""Who may use the studio, and what a browser may do with its answers.

A server on 127.0.0.1 is reachable from every web page the user opens: a page can send it requests
(cross-site requests) and, by pointing its own host name at 127.0.0.1 (DNS rebinding), even read the
answers. So every request passes `StudioGuard` first:

- the Host header must name an address this server serves (what a rebinding page cannot fake: its
  requests carry its own host name);
- a request that changes something (POST, PUT, PATCH, DELETE) from a browser must come from the
  studio's own page: a foreign `Origin`, or `Sec-Fetch-Site` other than same-origin, is refused;
- with an access token (needed beyond loopback), every request carries it: the `Authorization: Bearer`
  header, or the cookie that visiting `/?token=...` sets;
- every answer carries headers that keep a browser from framing the page, sniffing types, running
  inline or foreign script, or sending the address elsewhere.
"""

from __future__ import annotations

import re
import secrets
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from posedraw.errors import PosedrawError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARD = ("0.0.0.0", "::", "")
#: methods that change nothing: a cross-site page cannot read their answers (no CORS headers are sent)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

_TOKEN = re.compile(r"^[A-Za-z0-9._~-]{16,}$")
_HOST = re.compile(r"^(\[[0-9a-f:.]+\]|[a-z0-9._-]+)(?::(\d{1,5}))?$")


def json_error(message: str, status: int = 400) -> JSONResponse:
    """The studio's error answer: `{"error": "<one line>"}`."""
    return JSONResponse({"error": message}, status_code=status)


def _bracketed(host: str) -> str:
    """A host as it appears in a Host header: IPv6 addresses (two colons or more) in brackets."""
    return f"[{host}]" if host.count(":") > 1 and not host.startswith("[") else host


def split_host(value: str) -> tuple[str, int] | None:
    """(name, port) of a Host header or origin authority (port 80 when none is given); None if malformed."""
    found = _HOST.match(value.strip().lower())
    if found is None:
        return None
    return found[1], int(found[2] or 80)


def _allowed_name(value: str) -> str:
    name = _bracketed(value.strip().lower())
    if split_host(name) is None:
        raise PosedrawError(f"--allow-host: expected a host name, NAME:PORT or an IP address, got {value!r}")
    return name


def check_token(token: str) -> str:
    if not _TOKEN.match(token):
        raise PosedrawError("--token: expected auto, or at least 16 URL-safe characters (letters, digits, - _ . ~)")
    return token


@dataclass(frozen=True)
class Access:
    """Who may use the server.

    `hosts`: the Host header values served, "name:port" (that port) or "name" (any port); None serves
    any host, which only a server with a token may do (a wildcard bind has no list of its own names).
    `token`: the access token every request must carry, or None.
    """

    hosts: frozenset[str] | None
    token: str | None = None
    cookie: str = "posedraw-token"

    @classmethod
    def serving(cls, host: str, port: int, allow: Iterable[str] = (), token: str | None = None) -> Access:
        """What a server bound to `host:port` serves: its loopback names, or its host, plus `allow`
        (names of a proxy in front of it; a wildcard bind serves any host name)."""
        if host not in LOOPBACK and token is None:
            raise PosedrawError(f"--host {host or '(any)'}: serving beyond this machine needs an access token")
        cookie = f"posedraw-token-{port}"  # cookies ignore ports: one name per port keeps two studios apart
        if host in WILDCARD:
            return cls(None, token, cookie)
        names = [_bracketed(n) for n in LOOPBACK] if host in LOOPBACK else [_bracketed(host.lower())]
        return cls(frozenset({f"{name}:{port}" for name in names} | set(map(_allowed_name, allow))), token, cookie)

    def host_allowed(self, value: str) -> bool:
        found = split_host(value)
        if found is None:
            return False
        name, port = found
        return self.hosts is None or f"{name}:{port}" in self.hosts or name in self.hosts

    def origin_allowed(self, origin: str, host: str) -> bool:
        """An Origin header is the studio's own page: the host it was sent to, or another name served."""
        scheme, _, authority = origin.lower().partition("://")
        if scheme not in ("http", "https") or split_host(authority) is None:
            return False
        if split_host(authority) == split_host(host):
            return True
        return self.hosts is not None and self.host_allowed(authority)

    def token_matches(self, offered: str | None) -> bool:
        if self.token is None or offered is None:
            return False
        return secrets.compare_digest(offered.encode(), self.token.encode())


def resolve_token(host: str, token: str | None) -> str | None:
    """The token a server needs: the one given (`auto`: a new one), else a new one beyond loopback."""
    if token == "auto" or (token is None and host not in LOOPBACK):
        return secrets.token_urlsafe(24)
    return None if token is None else check_token(token)


def start_urls(host: str, port: int, token: str | None) -> list[str]:
    """The addresses to open, with the token for the first visit (a wildcard bind: this machine's
    name and its loopback address)."""
    names = [socket.gethostname(), "127.0.0.1"] if host in WILDCARD else [host]
    query = "" if token is None else f"?{urlencode({'token': token})}"
    return [f"http://{_bracketed(name)}:{port}/{query}" for name in names]


class StudioGuard:
    """Pure ASGI middleware: the checks above on every HTTP request, the headers on every answer."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app, self.access = app, access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        refusal = self.refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def refusal(self, scope: Scope) -> JSONResponse | RedirectResponse | None:
        """The answer to a request that may not reach the app (None: it may)."""
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if not self.access.host_allowed(host):
            served = ", ".join(sorted(self.access.hosts or ["well-formed host names"]))
            return json_error(f"host {host[:100]!r}: not an address this studio serves (it serves {served}; "
                              "start it with --allow-host NAME to serve another)", 421)  # fmt: skip
        if self.access.token is not None:
            answer = self.token_refusal(scope, headers)
            if answer is not None:
                return answer
        if scope["method"] not in SAFE_METHODS:
            return self.cross_site_refusal(headers, host)
        return None

    def token_refusal(self, scope: Scope, headers: Headers) -> JSONResponse | RedirectResponse | None:
        """Without the token: 401. A first visit with `?token=` sets the cookie and goes to the same
        address without it (so the token leaves the address bar and the page's requests carry it)."""
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        offered = dict(query).get("token")
        if offered is not None and scope["method"] == "GET":
            if not self.access.token_matches(offered):
                return json_error("token: not this studio's access token", 401)
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            path = "/" + scope["path"].lstrip("/")  # never "//elsewhere": that would leave the studio
            answer = RedirectResponse(path + (f"?{rest}" if rest else ""), status_code=303)
            answer.set_cookie(self.access.cookie, offered, httponly=True, samesite="strict", path="/")
            return answer
        scheme, _, bearer = headers.get("authorization", "").partition(" ")
        cookie = cookie_parser(headers.get("cookie", "")).get(self.access.cookie)
        if (scheme.lower() == "bearer" and self.access.token_matches(bearer.strip())) or self.access.token_matches(
            cookie
        ):
            return None
        return json_error("this studio needs its access token: open the address it printed at start "
                          "(http://HOST:PORT/?token=...) or send Authorization: Bearer TOKEN", 401)  # fmt: skip

    def cross_site_refusal(self, headers: Headers, host: str) -> JSONResponse | None:
        """A browser request that changes something must come from the studio's own page. Requests
        without Origin and Sec-Fetch-Site (curl, scripts) are not a browser's cross-site requests."""
        site = headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return json_error(f"Sec-Fetch-Site {site[:40]!r}: only the studio's own page may change it", 403)
        origin = headers.get("origin")
        if origin is not None and not self.access.origin_allowed(origin, host):
            return json_error(f"origin {origin[:100]!r}: only the studio's own page may change it", 403)
        return None


__all__ = ["SECURITY_HEADERS", "Access", "StudioGuard", "json_error", "resolve_token", "start_urls"]
