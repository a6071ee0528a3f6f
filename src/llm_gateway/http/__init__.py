"""The gateway's own upstream HTTP/1.1 client (asyncio Protocol + httptools).

See ``client`` for why it exists instead of httpx/aiohttp.
"""

from llm_gateway.http.client import HttpClient, HttpResponse, HttpStream
from llm_gateway.http.errors import (
    ConnectError,
    ConnectTimeout,
    HttpError,
    ReadTimeout,
    RemoteProtocolError,
)

__all__ = [
    "ConnectError",
    "ConnectTimeout",
    "HttpClient",
    "HttpError",
    "HttpResponse",
    "HttpStream",
    "ReadTimeout",
    "RemoteProtocolError",
]
