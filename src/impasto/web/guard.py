"""ASGI middleware for what Starlette's ``TrustedHostMiddleware`` does not cover: cross-origin
writes are refused (403), request bodies are limited in size (413, by ``Content-Length`` and
while received), and every response carries the security headers (CSP, nosniff, no framing)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["FORM_OVERHEAD", "Guard", "SECURITY_HEADERS"]

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
        b"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    ),
]
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        *SECURITY_HEADERS,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


#: What a request body may carry besides the uploaded file (multipart boundaries, headers).
FORM_OVERHEAD = 64 * 1024


class Guard:
    """Same-origin writes, a body size limit and security headers.

    Args:
        app: the wrapped ASGI app.
        max_upload: the upload limit in bytes; a request body may exceed it by
            :data:`FORM_OVERHEAD` (a form's part headers), no more.
    """

    def __init__(self, app: ASGIApp, *, max_upload: int) -> None:
        self.app = app
        self.max_body = max_upload + FORM_OVERHEAD
        # the limit a user set, not the body's allowance: "over 26,279,936 bytes" puzzled
        self.too_large = f"request over the {max_upload:,}-byte upload limit"

    def _problem(self, scope: Scope) -> tuple[int, str] | None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["method"] not in _SAFE_METHODS:
            origin = headers.get("origin")
            host = headers.get("host", "").lower()
            if origin is not None and urlsplit(origin).netloc.lower() != host:
                return 403, "cross-origin requests may not change anything"
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return 413, self.too_large
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self._problem(scope)
        if problem is not None:
            await _refuse(send, *problem)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:  # FastAPI answers it as JSON
                    raise HTTPException(413, self.too_large)
            return message

        async def secured_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, limited_receive, secured_send)
