"""Reading a request's body within a size limit, as it streams in: a body declared too large is
refused before a byte of it is read, one that grows too large as soon as it passes the limit,
so that no server ever holds more than the limit of one request. Used by the version servers
and by the endpoint host in front of them."""

from __future__ import annotations

from starlette.requests import Request

from modelci.runtime.errors import BadRequest, PayloadTooLarge


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, at most `limit` bytes; `PayloadTooLarge` (413) beyond, `BadRequest`
    (400) for a Content-Length that is not a number."""
    length = request.headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise BadRequest(f"Content-Length {length!r} is not a number") from None
        if declared > limit:
            raise PayloadTooLarge(f"body of {declared} bytes is above the limit of {limit}")
        return await request.body()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is above the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
