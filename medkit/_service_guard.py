"""ASGI middleware of the site service: bearer tokens, body size limits, rejection logs.

It runs before FastAPI reads a request, so a request without a valid token is
rejected before its body is read, and an oversized body is never buffered whole.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("medkit.network")

PUBLIC_PATHS = frozenset({"/health", "/docs", "/redoc", "/openapi.json"})
"""Paths served without a token. None of them returns records or models."""

PUBLIC_PREFIX = "/docs/static/"
"""Prefix of the documentation pages' script and style files, also served freely."""

READ_METHODS = frozenset({"GET", "HEAD"})
"""Methods that a read-only token may send."""

# The reason for a rejection travels to the log in the request's scope. The
# routes set it with set_rejection_reason; it never contains a record's values.
_REASON_KEY = "medkit.rejection_reason"

_LOGGED_STATUSES = frozenset({401, 403, 409, 413, 415, 422})

# At most this many rejections are logged per window; the rest are counted.
_LOG_LIMIT = 20
_LOG_WINDOW_SECONDS = 60.0


def set_rejection_reason(scope: Scope, reason: str) -> None:
    """Record why a request is rejected, for the log line of the guard."""
    scope[_REASON_KEY] = reason


class SiteGuard:
    """Check the bearer token and the body size of every request, then log rejections.

    Parameters
    ----------
    app : ASGI application
    token : str
        The site's write token: every method on every path outside
        :data:`PUBLIC_PATHS`.
    read_tokens : sequence of str, default=()
        Read-only tokens: only GET and HEAD requests, so they read records,
        statistics and models but cannot upload records or replace a model.
    body_limit : callable
        Returns the maximum body size in bytes for a request's method and path.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str,
        read_tokens: Sequence[str] = (),
        body_limit: Callable[[str, str], int],
    ) -> None:
        self.app = app
        self._token = token.encode("utf-8")
        self._read_tokens = [read.encode("utf-8") for read in read_tokens]
        self._body_limit = body_limit
        self._log = _RateLimitedLog()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_and_log(message: Message) -> None:
            # Logged before the response goes out, so a client that has the
            # response also finds the log line.
            if message["type"] == "http.response.start":
                status = message["status"]
                if status in _LOGGED_STATUSES:
                    self._log.rejected(scope, status, scope.get(_REASON_KEY))
            await send(message)

        await self._guard(scope, receive, send_and_log)

    async def _guard(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path not in PUBLIC_PATHS and not path.startswith(PUBLIC_PREFIX):
            problem = self._check_token(scope)
            if problem is not None:
                await _reply(scope, send, *problem)
                return

        limit = self._body_limit(scope["method"], scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _reply(scope, send, *_too_large(scope, declared, limit))
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return

        # Read the whole body here, stopping as soon as it passes the limit,
        # which also covers chunked bodies without a Content-Length.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _reply(scope, send, *_too_large(scope, None, limit))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    def _check_token(self, scope: Scope) -> tuple[int, str, dict] | None:
        header = _header(scope, b"authorization")
        if header is None or not header.strip():
            return (
                401,
                "Missing bearer token. Send the header 'Authorization: Bearer "
                "<token>' with the token the site printed or read from "
                "MEDKIT_TOKEN.",
                _CHALLENGE,
            )

        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return (
                401,
                f"The Authorization header uses the {scheme!r} scheme; this site "
                "accepts only 'Authorization: Bearer <token>'.",
                _CHALLENGE,
            )
        if not credentials.strip():
            return (
                401,
                "The Authorization header has the Bearer scheme but no token; send "
                "'Authorization: Bearer <token>'.",
                _CHALLENGE,
            )

        offered = credentials.strip().encode("utf-8", "replace")
        # Compare with every token, so the time taken does not tell which matched.
        writes = hmac.compare_digest(offered, self._token)
        reads = [hmac.compare_digest(offered, read) for read in self._read_tokens]

        if writes:
            return None
        if any(reads):
            if scope["method"] in READ_METHODS:
                return None
            return (
                403,
                f"This token is read-only: it may send GET requests (records, "
                f"statistics, models) but not {scope['method']} {scope['path']}. "
                "Only the site itself, with its write token, stores records and "
                "models.",
                {},
            )
        return (
            403,
            "Invalid bearer token. Ask the site for its current token.",
            {},
        )


_CHALLENGE = {"www-authenticate": 'Bearer realm="medkit"'}


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _too_large(scope: Scope, declared: int | None, limit: int) -> tuple[int, str, dict]:
    size = "" if declared is None else f" of {declared:,} bytes"
    if scope["method"] == "PUT" and scope["path"].startswith("/models/"):
        most = f"{limit:,} bytes"
        if limit >= 1_000_000:
            most = f"{limit / 1_000_000:g} MB ({most})"
        detail = (
            f"Model file{size} is too large: this site accepts model files of at "
            f"most {most}. Send a smaller model, or ask the site to raise "
            "max_model_bytes."
        )
    else:
        detail = (
            f"Request body{size} is larger than this site's limit of {limit:,} "
            "bytes. Send the records in smaller batches, or ask the site to raise "
            "the limit."
        )
    return 413, detail, {"connection": "close"}


async def _reply(
    scope: Scope, send: Send, status: int, detail: str, headers: dict
) -> None:
    set_rejection_reason(scope, detail.split(". ")[0])
    body = json.dumps({"detail": detail}).encode("utf-8")
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
        *(
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in headers.items()
        ),
    ]
    await send(
        {"type": "http.response.start", "status": status, "headers": raw_headers}
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


class _RateLimitedLog:
    """Log rejected requests, at most :data:`_LOG_LIMIT` lines per minute."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._window_start = time.monotonic()
        self._logged = 0
        self._skipped = 0

    def rejected(self, scope: Scope, status: int, reason: str | None) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._window_start >= _LOG_WINDOW_SECONDS:
                if self._skipped:
                    logger.warning(
                        "%d more requests rejected in the last %.0f s, not logged",
                        self._skipped,
                        now - self._window_start,
                    )
                self._window_start, self._logged, self._skipped = now, 0, 0
            if self._logged >= _LOG_LIMIT:
                self._skipped += 1
                return
            self._logged += 1
        client = scope.get("client")
        address = f"{client[0]}:{client[1]}" if client else "unknown client"
        logger.warning(
            "Rejected %s %s from %s with status %d: %s",
            scope["method"],
            scope["path"],
            address,
            status,
            reason or "no reason recorded",
        )
