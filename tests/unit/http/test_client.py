"""HttpClient against real loopback sockets and a server that misbehaves on cue."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rawhttp_server import RawServer, ServerConn, chunk, response, serve_forever

from llm_gateway.http import (
    ConnectError,
    ConnectTimeout,
    HttpClient,
    HttpError,
    ReadTimeout,
)
from llm_gateway.http.errors import (
    FirstByteTimeout,
    RemoteProtocolError,
)

pytestmark = pytest.mark.timeout(10)

EOF_WITHIN = 0.1  # the gateway promises the upstream sees a client go away this fast


def head_of(status: int, *headers: tuple[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} X", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# --- bodies -------------------------------------------------------------------------


async def test_content_length_body_and_request_head() -> None:
    async def handler(conn: ServerConn) -> None:
        while await conn.read_request() is not None:
            await conn.respond(
                b'{"id": "x", "n": [1, 2]}', headers=[("Content-Type", "application/json")]
            )

    async with (
        RawServer(handler) as srv,
        HttpClient(
            srv.url + "/v1/", headers={"Authorization": "Bearer k", "X-Team": "a"}
        ) as client,
    ):
        resp = await client.request(
            "POST",
            "/chat/completions",
            headers={"x-team": "b", "Content-Length": "999", "X-Extra": "1"},
            body=b'{"model": "m"}',
        )
        assert resp.status == 200
        assert resp.json() == {"id": "x", "n": [1, 2]}
        assert resp.headers["content-type"] == "application/json"
        assert "<HttpResponse 200" in repr(resp)
        await client.request("GET", "models")
        await client.request("POST", "/empty")

    first, second, third = srv.requests
    assert first.method == "POST"
    assert first.target == "/v1/chat/completions"
    assert first.body == b'{"model": "m"}'
    h = first.headers
    assert h["host"] == f"127.0.0.1:{srv.port}"
    assert h["accept-encoding"] == "identity"
    assert h["connection"] == "keep-alive"
    assert h["authorization"] == "Bearer k"
    assert h["x-team"] == "b"  # per-call header overrides the default
    assert [k.lower() for k, _ in first.raw_headers].count("x-team") == 1
    assert h["content-length"] == "14"  # ours, not the caller's
    assert h["x-extra"] == "1"
    assert second.target == "/v1/models"
    assert "content-length" not in second.headers
    assert second.headers["x-team"] == "a"
    assert third.headers["content-length"] == "0"


async def test_chunked_body() -> None:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        conn.write(head_of(200, ("transfer-encoding", "chunked")))
        conn.write(chunk(b"hello ") + chunk(b"chunked ") + chunk(b"world") + b"0\r\n\r\n")
        await conn.drain()
        await conn.wait_eof()

    async with RawServer(handler) as srv, HttpClient(srv.url) as client:
        resp = await client.request("GET", "/")
        assert resp.body == b"hello chunked world"


async def test_read_until_close_body_is_not_reused() -> None:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        conn.write(head_of(200, ("content-type", "text/plain")) + b"until ")
        await conn.drain()
        await asyncio.sleep(0.01)
        conn.write(b"close")
        await conn.drain()
        conn.close()

    async with RawServer(handler) as srv, HttpClient(srv.url) as client:
        assert (await client.request("GET", "/")).body == b"until close"
        async with client.stream("GET", "/") as stream:
            assert await stream.read() == b"until close"
        assert srv.accepted == 2


async def test_no_body_statuses_and_head() -> None:
    async def handler(conn: ServerConn) -> None:
        while (req := await conn.read_request()) is not None:
            if req.target == "/204":
                conn.write(head_of(204, ("x-a", "1")))
            elif req.target == "/304":
                conn.write(head_of(304, ("content-length", "10")))
            elif req.method == "HEAD" and req.target == "/zero":
                conn.write(head_of(200, ("content-length", "0")))
            elif req.method == "HEAD":
                conn.write(head_of(200, ("content-length", "1234")))
            else:
                conn.write(response(b"after-head"))
            await conn.drain()

    async with RawServer(handler) as srv, HttpClient(srv.url) as client:
        for _ in range(2):
            resp = await client.request("HEAD", "/")
            assert (resp.status, resp.body, resp.headers["content-length"]) == (200, b"", "1234")
            assert (await client.request("GET", "/")).body == b"after-head"
        resp = await client.request("GET", "/204")
        assert (resp.status, resp.body) == (204, b"")
        resp = await client.request("GET", "/304")
        assert (resp.status, resp.body) == (304, b"")
        async with client.stream("HEAD", "/") as stream:
            assert stream.status == 200
            assert [p async for p in stream.iter_bytes()] == []
        assert (await client.request("GET", "/")).body == b"after-head"
        assert (await client.request("HEAD", "/zero")).headers["content-length"] == "0"
        assert (await client.request("GET", "/")).body == b"after-head"
    assert srv.accepted == 1


async def test_head_response_without_keep_alive() -> None:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        conn.write(head_of(200, ("connection", "close"), ("content-length", "5")))
        await conn.drain()
        await conn.wait_eof()

    async with RawServer(handler) as srv, HttpClient(srv.url) as client:
        assert (await client.request("HEAD", "/")).status == 200
        assert (await client.request("HEAD", "/")).status == 200
    assert srv.accepted == 2


async def test_interim_1xx_response_is_skipped() -> None:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        conn.write(head_of(100, ("x-interim", "yes")) + response(b"final", headers=[("x-f", "1")]))
        await conn.drain()
        await conn.wait_eof()

    async with RawServer(handler) as srv, HttpClient(srv.url) as client:
        resp = await client.request("POST", "/", body=b"x")
        assert (resp.status, resp.body) == (200, b"final")
        assert "x-interim" not in resp.headers


async def test_repeated_headers_are_joined() -> None:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        hdrs = [("Set-Cookie", "a=1"), ("X-Rate", "1"), ("set-cookie", "b=2"), ("VARY", "x")]
        await conn.respond(b"", headers=hdrs)
        await conn.wait_eof()

    async with RawServer(handler) as srv, HttpClient(srv.url) as client:
        resp = await client.request("GET", "/")
        assert resp.headers["set-cookie"] == "a=1, b=2"
        assert resp.headers["x-rate"] == "1"
        assert resp.headers["vary"] == "x"


async def test_large_bodies_both_ways() -> None:
    big = bytes(range(256)) * (5 * 4096)  # 5 MiB

    async def handler(conn: ServerConn) -> None:
        while (req := await conn.read_request()) is not None:
            assert req.body == big or not req.body
            await conn.respond(big, chunked=req.target == "/chunked")

    async with RawServer(handler) as srv, HttpClient(srv.url) as client:
        assert (await client.request("POST", "/", body=big)).body == big
        assert (await client.request("GET", "/chunked")).body == big
        async with client.stream("GET", "/") as stream:
            got = bytearray()
            async for piece in stream.iter_bytes():
                got += piece
            assert got == big
    assert srv.accepted == 1


# --- keep-alive and pool ------------------------------------------------------------


async def test_keep_alive_one_connection_serves_many_requests() -> None:
    async with RawServer(serve_forever) as srv, HttpClient(srv.url) as client:
        for _ in range(25):
            assert (await client.request("GET", "/")).body == b"ok"
        for _ in range(5):
            async with client.stream("GET", "/") as stream:
                assert await stream.read() == b"ok"
    assert srv.accepted == 1
    assert len(srv.requests) == 30


async def test_pool_cap_makes_requests_wait() -> None:
    async def handler(conn: ServerConn) -> None:
        while await conn.read_request() is not None:
            await asyncio.sleep(0.03)
            await conn.respond(b"slow")

    async with RawServer(handler) as srv, HttpClient(srv.url, max_connections=2) as client:
        results = await asyncio.gather(*(client.request("GET", "/") for _ in range(7)))
        assert [r.body for r in results] == [b"slow"] * 7
        assert srv.max_active == 2
        assert srv.accepted == 2


async def test_pool_waiter_cancelled_does_not_leak_a_slot() -> None:
    release = asyncio.Event()

    async def handler(conn: ServerConn) -> None:
        while await conn.read_request() is not None:
            await release.wait()
            await conn.respond(b"done")

    async with RawServer(handler) as srv, HttpClient(srv.url, max_connections=1) as client:
        holder = asyncio.create_task(client.request("GET", "/"))
        await asyncio.sleep(0.02)
        waiter = asyncio.create_task(client.request("GET", "/"))
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        release.set()
        assert (await holder).body == b"done"
        assert (await client.request("GET", "/")).body == b"done"
    assert srv.accepted == 1


async def test_waiter_cancelled_after_being_handed_a_connection() -> None:
    async with RawServer(serve_forever) as srv, HttpClient(srv.url, max_connections=1) as client:
        await client.request("GET", "/")
        conn = client._idle.pop()
        client._total = 1
        # A waiter that is handed the connection but cancelled before it runs passes it on.
        waiter = asyncio.create_task(client.request("GET", "/"))
        await asyncio.sleep(0)
        client._release(conn)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert client._idle == [conn]
        # Same for a handed-over free slot.
        client._idle.clear()
        waiter = asyncio.create_task(client.request("GET", "/"))
        await asyncio.sleep(0)
        conn.abort()
        client._release(conn)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert client._total == 0
        assert (await client.request("GET", "/")).body == b"ok"


async def test_connection_handed_to_waiter_dead_on_arrival() -> None:
    async with RawServer(serve_forever) as srv, HttpClient(srv.url, max_connections=1) as client:
        await client.request("GET", "/")
        conn = client._idle.pop()
        waiter = asyncio.create_task(client.request("GET", "/"))
        await asyncio.sleep(0)
        client._release(conn)  # handed to the waiter...
        conn.abort()  # ...and dies before the waiter runs: its slot opens a fresh one
        assert (await waiter).body == b"ok"
        assert client._total == 1
    assert srv.accepted == 2


async def test_server_connection_close_header_is_honoured() -> None:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.respond(b"bye", headers=[("connection", "close")])
        await conn.wait_eof()

    async with RawServer(handler) as srv, HttpClient(srv.url) as client:
        assert (await client.request("GET", "/")).body == b"bye"
        assert (await client.request("GET", "/")).body == b"bye"
        assert client._idle == []
    assert srv.accepted == 2


async def test_idle_connection_closed_by_server_is_forgotten() -> None:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.respond(b"once")
        conn.close()

    async with RawServer(handler) as srv, HttpClient(srv.url) as client:
        assert (await client.request("GET", "/")).body == b"once"
        await asyncio.sleep(0.02)
        assert client._idle == []
        assert client._total == 0
        assert (await client.request("GET", "/")).body == b"once"
    assert srv.accepted == 2


async def test_unsolicited_bytes_on_idle_connection_drop_it() -> None:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.respond(b"a")
        await asyncio.sleep(0.01)
        conn.write(b"garbage")
        await conn.wait_eof()

    async with RawServer(handler) as srv, HttpClient(srv.url) as client:
        await client.request("GET", "/")
        await asyncio.sleep(0.05)
        assert (await client.request("GET", "/")).body == b"a"
    assert srv.accepted == 2


async def test_extra_bytes_after_response_prevent_reuse() -> None:
    async def handler(conn: ServerConn) -> None:
        while (req := await conn.read_request()) is not None:
            if req.target == "/dup":  # two responses for one request
                conn.write(response(b"1") + response(b"2"))
            elif req.target == "/junk":  # a body on a HEAD answer, then garbage
                conn.write(head_of(200, ("content-length", "3")) + b"abc" + b"\x00junk\r\n")
            else:
                conn.write(response(b"x") + b"not http at all\r\n\r\n")
            await conn.drain()

    async with RawServer(handler) as srv, HttpClient(srv.url) as client:
        assert (await client.request("GET", "/dup")).body == b"1"
        assert (await client.request("HEAD", "/junk")).body == b""
        assert (await client.request("GET", "/")).body == b"x"
        assert (await client.request("GET", "/")).body == b"x"
    assert srv.accepted == 4


# --- stale keep-alive retry ---------------------------------------------------------


async def test_stale_keep_alive_connection_is_retried_once() -> None:
    async def handler(conn: ServerConn) -> None:
        if conn.server.accepted == 1:
            await conn.read_request()
            await conn.respond(b"first")
            await conn.read_request()  # the race: the request arrives as we time it out
            conn.abort()
            return
        await serve_forever(conn, b"fresh")

    async with RawServer(handler) as srv, HttpClient(srv.url) as client:
        assert (await client.request("POST", "/", body=b"1")).body == b"first"
        assert (await client.request("POST", "/", body=b"2")).body == b"fresh"
        async with client.stream("GET", "/") as stream:
            assert await stream.read() == b"fresh"
    assert srv.accepted == 2
    assert [r.body for r in srv.requests[:3]] == [b"1", b"2", b"2"]


async def test_stale_connection_closing_before_write_is_retried() -> None:
    async with RawServer(serve_forever) as srv, HttpClient(srv.url) as client:
        await client.request("GET", "/")
        conn = client._idle[-1]
        # Closed locally but not yet reported lost: the write-time check catches it.
        assert conn._transport is not None
        conn._transport.close()
        assert (await client.request("GET", "/")).body == b"ok"
    assert srv.accepted == 2


async def test_retry_is_not_repeated_and_fresh_failures_are_not_retried() -> None:
    async def handler(conn: ServerConn) -> None:
        if conn.server.accepted == 1:
            await conn.read_request()
            await conn.respond(b"first")
        await conn.read_request()
        conn.reset()

    async with RawServer(handler) as srv, HttpClient(srv.url) as client:
        await client.request("GET", "/")
        with pytest.raises(ConnectError, match=r"before responding: .*reset"):
            await client.request("GET", "/")
        assert srv.accepted == 2
        with pytest.raises(ConnectError):
            await client.request("GET", "/")
        assert srv.accepted == 3
        assert client._total == 0


async def test_retry_that_cannot_connect_releases_the_slot() -> None:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.respond(b"first")
        assert conn.server._server is not None
        conn.server._server.close()  # stop listening: the retry's connect is refused
        await conn.read_request()
        conn.abort()

    async with RawServer(handler) as srv, HttpClient(srv.url) as client:
        await client.request("GET", "/")
        with pytest.raises(ConnectError, match="cannot connect"):
            await client.request("GET", "/")
        assert client._total == 0


async def test_exchange_on_a_connection_that_died_unnoticed() -> None:
    async with RawServer(serve_forever) as srv, HttpClient(srv.url) as client:
        await client.request("GET", "/")
        conn = client._idle.pop()
        conn.abort()
        with pytest.raises(ConnectError, match="before the request was sent") as info:
            await conn.exchange(b"GET / HTTP/1.1\r\n\r\n", None, False, False)
        assert type(info.value).__name__ == "_StaleConnectionError"
        conn._reused = False
        with pytest.raises(ConnectError) as info:
            await conn.exchange(b"GET / HTTP/1.1\r\n\r\n", None, False, False)
        assert type(info.value) is ConnectError


async def test_no_retry_after_response_bytes() -> None:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.respond(b"first")
        await conn.read_request()
        conn.write(b"HTTP/1.1 200 OK\r\ncontent-le")
        await conn.drain()
        conn.abort()

    async with RawServer(handler) as srv, HttpClient(srv.url) as client:
        await client.request("GET", "/")
        with pytest.raises(RemoteProtocolError, match="mid-response"):
            await client.request("GET", "/")
    assert srv.accepted == 1


# --- connect failures ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_connection_refused() -> None:
    async with HttpClient(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(ConnectError, match="cannot connect") as info:
            await client.request("GET", "/")
        assert isinstance(info.value, HttpError)
        assert client._total == 0


async def test_connect_timeout_when_tls_handshake_never_answers() -> None:
    async def silent(conn: ServerConn) -> None:
        await conn.wait_eof()

    async with RawServer(silent) as srv:
        url = srv.url.replace("http://", "https://")
        async with HttpClient(url, connect_timeout=0.1) as client:
            t0 = time.monotonic()
            with pytest.raises(ConnectTimeout):
                await client.request("GET", "/")
            assert time.monotonic() - t0 < 1
            assert client._total == 0


async def test_tls_failure_is_a_connect_error() -> None:
    async def garbage(conn: ServerConn) -> None:
        conn.write(b"this is not TLS\r\n" * 20)
        await conn.drain()
        await conn.wait_eof()

    async with RawServer(garbage) as srv:
        url = srv.url.replace("http://", "https://")
        ctx = ssl.create_default_context()
        async with HttpClient(url, ssl_context=ctx, connect_timeout=2) as client:
            with pytest.raises(ConnectError):
                await client.request("GET", "/")


@pytest.fixture(scope="module")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (EC key: generated in ms)."""
    if shutil.which("openssl") is None:  # pragma: no cover
        pytest.skip("openssl CLI not available")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=10,
    )  # fmt: skip
    return cert, key


async def test_tls_round_trip_keep_alive_and_early_close(tls_cert: tuple[Path, Path]) -> None:
    cert, key = tls_cert
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def handler(conn: ServerConn) -> None:
        while (req := await conn.read_request()) is not None:
            if req.target == "/hold":
                conn.write(head_of(200, ("transfer-encoding", "chunked")) + chunk(b"secret"))
                await conn.drain()
                await conn.wait_eof()
                return
            await conn.respond(b"over tls", chunked=True)

    async with RawServer(handler, server_ctx) as srv:
        client_ctx = ssl.create_default_context(cafile=str(cert))
        async with HttpClient(srv.url, ssl_context=client_ctx) as client:
            for _ in range(3):
                assert (await client.request("GET", "/")).body == b"over tls"
            assert srv.accepted == 1
            async with client.stream("GET", "/hold") as stream:
                assert await anext(stream.iter_bytes()) == b"secret"
            await asyncio.wait_for(srv.conns[0].eof.wait(), EOF_WITHIN)
        # The default context does not trust a self-signed certificate.
        async with HttpClient(srv.url) as untrusted:
            with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusted.request("GET", "/")


async def test_closed_before_any_byte_on_fresh_connection() -> None:
    async def rude(conn: ServerConn) -> None:
        await conn.read_request()
        conn.close()

    async with RawServer(rude) as srv, HttpClient(srv.url) as client:
        with pytest.raises(ConnectError):
            await client.request("GET", "/")
        with pytest.raises(ConnectError):
            async with client.stream("GET", "/"):
                pass  # pragma: no cover


# --- timeouts -----------------------------------------------------------------------


async def test_read_timeout_before_headers() -> None:
    async def stall(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.wait_eof()

    async with RawServer(stall) as srv, HttpClient(srv.url, read_timeout=0.1) as client:
        t0 = time.monotonic()
        with pytest.raises(ReadTimeout, match="no answer from"):
            await client.request("GET", "/")
        assert 0.09 < time.monotonic() - t0 < 0.5
        with pytest.raises(ReadTimeout):
            async with client.stream("GET", "/"):
                pass  # pragma: no cover
        assert client._total == 0
        await asyncio.wait_for(srv.conns[0].eof.wait(), EOF_WITHIN)


async def test_read_timeout_mid_body() -> None:
    async def stall(conn: ServerConn) -> None:
        await conn.read_request()
        conn.write(head_of(200, ("content-length", "100")) + b"partial")
        await conn.drain()
        await conn.wait_eof()

    async with RawServer(stall) as srv, HttpClient(srv.url, read_timeout=0.1) as client:
        with pytest.raises(ReadTimeout):
            await client.request("GET", "/")
        async with client.stream("GET", "/") as stream:
            pieces = stream.iter_bytes()
            assert await anext(pieces) == b"partial"
            with pytest.raises(ReadTimeout):
                await anext(pieces)


async def test_read_timeout_is_an_idle_gap_not_a_deadline() -> None:
    async def trickle(conn: ServerConn) -> None:
        await conn.read_request()
        conn.write(head_of(200, ("transfer-encoding", "chunked")))
        for _ in range(8):
            await asyncio.sleep(0.03)
            conn.write(chunk(b"tick"))
            await conn.drain()
        conn.write(b"0\r\n\r\n")
        await conn.drain()
        await conn.wait_eof()

    async with RawServer(trickle) as srv, HttpClient(srv.url, read_timeout=0.2) as client:
        # 0.24 s in total, but never more than 0.03 s without bytes.
        assert (await client.request("GET", "/")).body == b"tick" * 8


async def test_no_read_timeout() -> None:
    async with RawServer(serve_forever) as srv, HttpClient(srv.url, read_timeout=None) as client:
        assert (await client.request("GET", "/")).body == b"ok"


# --- broken responses ---------------------------------------------------------------


async def test_server_closes_mid_body() -> None:
    async def cut(conn: ServerConn) -> None:
        req = await conn.read_request()
        assert req is not None
        if req.target == "/chunked":
            conn.write(head_of(200, ("transfer-encoding", "chunked")) + chunk(b"half"))
        else:
            conn.write(head_of(200, ("content-length", "100")) + b"half")
        await conn.drain()
        await asyncio.sleep(0.01)
        conn.close()

    async with RawServer(cut) as srv, HttpClient(srv.url) as client:
        for target in ("/", "/chunked"):
            with pytest.raises(RemoteProtocolError, match="mid-response"):
                await client.request("GET", target)
            async with client.stream("GET", target) as stream:
                with pytest.raises(RemoteProtocolError):
                    async for _ in stream.iter_bytes():
                        pass
            async with client.stream("GET", target) as stream:
                with pytest.raises(RemoteProtocolError):
                    await stream.read()
        assert client._total == 0


async def test_malformed_response() -> None:
    async def bad(conn: ServerConn) -> None:
        await conn.read_request()
        conn.write(b"HTTP/1.1 200 OK\r\ncontent-length: banana\r\n\r\n")
        await conn.drain()
        await conn.wait_eof()

    async with RawServer(bad) as srv, HttpClient(srv.url) as client:
        with pytest.raises(RemoteProtocolError, match="malformed"):
            await client.request("GET", "/")


# --- streaming ----------------------------------------------------------------------


async def test_stream_delivers_pieces_before_the_body_ends() -> None:
    go_on = asyncio.Event()

    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        conn.write(head_of(200, ("transfer-encoding", "chunked"), ("x-s", "1")))
        conn.write(chunk(b"data: first\n\n"))
        await conn.drain()
        await go_on.wait()
        conn.write(chunk(b"data: second\n\n") + b"0\r\n\r\n")
        await conn.drain()
        await serve_forever(conn)

    async with RawServer(handler) as srv, HttpClient(srv.url) as client:
        async with client.stream("POST", "/", body=b"{}") as stream:
            assert stream.status == 200
            assert stream.headers["x-s"] == "1"
            it = stream.iter_bytes()
            assert await anext(it) == b"data: first\n\n"
            assert not go_on.is_set()  # the server is still holding the rest back
            go_on.set()
            assert await anext(it) == b"data: second\n\n"
            with pytest.raises(StopAsyncIteration):
                await anext(it)
        # A fully read stream returns its connection to the pool.
        assert (await client.request("GET", "/")).body == b"ok"
    assert srv.accepted == 1


async def _server_holding_a_stream_open(conn: ServerConn) -> None:
    await conn.read_request()
    conn.write(head_of(200, ("transfer-encoding", "chunked")) + chunk(b"piece"))
    await conn.drain()
    await conn.wait_eof()


async def test_leaving_a_stream_early_closes_the_socket() -> None:
    async with (
        RawServer(_server_holding_a_stream_open) as srv,
        HttpClient(srv.url) as client,
    ):
        async with client.stream("GET", "/") as stream:
            assert await anext(stream.iter_bytes()) == b"piece"
        await asyncio.wait_for(srv.conns[0].eof.wait(), EOF_WITHIN)
        assert client._total == 0
        with pytest.raises(RuntimeError):
            await stream.read()
        with pytest.raises(RuntimeError):
            await anext(stream.iter_bytes())
        with pytest.raises(RuntimeError):
            await stream.__aenter__()


async def test_cancelling_a_stream_consumer_closes_the_socket() -> None:
    async with (
        RawServer(_server_holding_a_stream_open) as srv,
        HttpClient(srv.url) as client,
    ):
        got_first = asyncio.Event()

        async def consume() -> None:
            async with client.stream("GET", "/") as stream:
                async for _ in stream.iter_bytes():
                    got_first.set()

        task = asyncio.create_task(consume())
        await got_first.wait()
        await asyncio.sleep(0.01)  # the consumer is now parked waiting for bytes
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(srv.conns[0].eof.wait(), EOF_WITHIN)
        assert client._total == 0


@pytest.mark.parametrize("streaming", [False, True])
async def test_cancelling_while_awaiting_headers_closes_the_socket(streaming: bool) -> None:
    async def stall(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.wait_eof()

    async with RawServer(stall) as srv, HttpClient(srv.url) as client:

        async def call() -> None:
            if streaming:
                async with client.stream("GET", "/"):
                    pass  # pragma: no cover
            else:
                await client.request("GET", "/")

        task = asyncio.create_task(call())
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(srv.conns[0].eof.wait(), EOF_WITHIN)
        assert client._total == 0


async def test_slow_stream_consumer_pauses_reading() -> None:
    piece = b"x" * 65536
    total = 64  # 4 MiB, well past the 1 MiB high-water mark

    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        conn.write(head_of(200, ("transfer-encoding", "chunked")))
        for _ in range(total):
            conn.write(chunk(piece))
            await conn.drain()
        conn.write(b"0\r\n\r\n")
        await conn.drain()
        await serve_forever(conn)

    async with RawServer(handler) as srv, HttpClient(srv.url, read_timeout=0.2) as client:
        async with client.stream("GET", "/") as stream:
            conn = stream._conn
            assert conn is not None
            for _ in range(100):
                if conn._paused:
                    break
                await asyncio.sleep(0.005)
            assert conn._paused
            assert conn._buffered < 3 * 1024 * 1024
            # Paused longer than the read timeout: that is the consumer's time, not an idle upstream.
            await asyncio.sleep(0.3)
            size = 0
            async for part in stream.iter_bytes():
                size += len(part)
            assert size == len(piece) * total
        assert (await client.request("GET", "/")).body == b"ok"
    assert srv.accepted == 1


async def test_chunks_that_arrive_together_are_handed_over_together() -> None:
    """Several HTTP chunks in one socket write come out as one piece: one wake-up and one
    parse pass for all of them (the gateway then writes them to its client at once)."""

    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        frames = b"".join(chunk(f"data: {i}\n\n".encode()) for i in range(5))
        conn.write(head_of(200, ("transfer-encoding", "chunked")) + frames + b"0\r\n\r\n")
        await conn.drain()
        await serve_forever(conn)

    async with (
        RawServer(handler) as srv,
        HttpClient(srv.url) as client,
        client.stream("GET", "/") as stream,
    ):
        pieces = [piece async for piece in stream.iter_bytes()]
    assert b"".join(pieces) == b"".join(f"data: {i}\n\n".encode() for i in range(5))
    assert len(pieces) < 5


async def test_stream_read_after_pause_returns_everything() -> None:
    big = b"y" * (3 * 1024 * 1024)

    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.respond(big, chunked=True)
        await conn.wait_eof()

    async with (
        RawServer(handler) as srv,
        HttpClient(srv.url) as client,
        client.stream("GET", "/") as stream,
    ):
        conn = stream._conn
        assert conn is not None
        for _ in range(100):
            if conn._paused or conn._done:
                break
            await asyncio.sleep(0.005)
        assert await stream.read() == big


async def test_body_completing_while_paused_resumes_reading() -> None:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        conn.write(head_of(200, ("transfer-encoding", "chunked")))
        await conn.drain()
        await serve_forever(conn)

    big = b"z" * (1024 * 1024 + 10)
    async with RawServer(handler) as srv, HttpClient(srv.url) as client:
        async with client.stream("GET", "/") as stream:
            conn = stream._conn
            assert conn is not None
            # Crossing the high-water mark and finishing in one read.
            conn.data_received(chunk(big) + b"0\r\n\r\n")
            assert conn._done and not conn._paused
            assert await stream.read() == big
        assert (await client.request("GET", "/")).body == b"ok"
    assert srv.accepted == 1


# --- hypothesis: chunked reassembly -------------------------------------------------


def test_chunked_reassembly_property() -> None:
    """Random bodies, random chunk sizes, random TCP segmentation: the exact body comes back."""
    loop = asyncio.new_event_loop()
    script: list[list[bytes]] = []

    async def handler(conn: ServerConn) -> None:
        while await conn.read_request() is not None:
            for segment in script.pop(0):
                conn.write(segment)
                await conn.drain()

    srv = RawServer(handler)
    loop.run_until_complete(srv.__aenter__())
    client = HttpClient(srv.url)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        body=st.binary(max_size=3000),
        sizes=st.lists(st.integers(1, 700), max_size=30),
        cuts=st.lists(st.integers(1, 400), max_size=20),
        streaming=st.booleans(),
    )
    def check(body: bytes, sizes: list[int], cuts: list[int], streaming: bool) -> None:
        chunks, pos = [], 0
        for size in sizes:
            if pos >= len(body):
                break
            chunks.append(body[pos : pos + size])
            pos += size
        if pos < len(body):
            chunks.append(body[pos:])
        wire = head_of(200, ("transfer-encoding", "chunked"))
        wire += b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks) + b"0\r\n\r\n"
        segments, pos = [], 0
        for cut in cuts:
            if pos >= len(wire):
                break
            segments.append(wire[pos : pos + cut])
            pos += cut
        segments.append(wire[pos:])
        script.append(segments)

        async def fetch() -> bytes:
            if not streaming:
                return (await client.request("GET", "/")).body
            async with client.stream("GET", "/") as stream:
                return b"".join([p async for p in stream.iter_bytes()])

        assert loop.run_until_complete(asyncio.wait_for(fetch(), 2)) == body

    try:
        check()
        assert srv.accepted == 1
    finally:
        loop.run_until_complete(client.aclose())
        loop.run_until_complete(srv.__aexit__(None, None, None))
        loop.close()


# --- request construction and lifecycle ---------------------------------------------


async def test_header_and_path_injection_is_rejected() -> None:
    client = HttpClient("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="line break"):
        await client.request("GET", "/", headers={"x-a": "1\r\nx-evil: 1"})
    with pytest.raises(ValueError, match="line break"):
        client.stream("GET", "/a HTTP/1.1\r\nx-evil: 1\r\n\r\nGET /b")
    with pytest.raises(ValueError, match="line break"):
        HttpClient("http://127.0.0.1:1", headers={"x": "a\nb"})
    with pytest.raises(ValueError):
        HttpClient("ftp://example")
    with pytest.raises(ValueError):
        HttpClient("http://127.0.0.1:1", max_connections=0)
    await client.aclose()


def test_origin_and_host_header_forms() -> None:
    assert HttpClient("https://api.example.com/v1")._fixed.startswith("host: api.example.com\r\n")
    assert HttpClient("http://[::1]:8080")._fixed.startswith("host: [::1]:8080\r\n")
    assert HttpClient("HTTPS://h:443/").origin == "https://h:443"
    # Managed headers in the defaults are ignored.
    fixed = HttpClient(
        "http://h", headers={"Connection": "close", "Accept-Encoding": "gzip"}
    )._fixed
    assert "close" not in fixed and "gzip" not in fixed


async def test_aclose_closes_idle_and_in_flight_connections() -> None:
    gate = asyncio.Event()

    async def handler(conn: ServerConn) -> None:
        while (req := await conn.read_request()) is not None:
            if req.target == "/slow":
                await gate.wait()
            await conn.respond(b"r")

    async with RawServer(handler) as srv:
        client = HttpClient(srv.url, max_connections=2)
        await asyncio.gather(client.request("GET", "/"), client.request("GET", "/"))
        assert len(client._idle) == 2
        busy = asyncio.create_task(client.request("GET", "/slow"))
        await asyncio.sleep(0.01)
        busy2 = asyncio.create_task(client.request("GET", "/slow"))
        await asyncio.sleep(0.01)
        waiting = asyncio.create_task(client.request("GET", "/"))
        await asyncio.sleep(0.01)
        await client.aclose()
        with pytest.raises(ConnectError, match="closed"):
            await waiting
        gate.set()
        assert (await busy).body == b"r"
        assert (await busy2).body == b"r"
        assert client._total == 0
        with pytest.raises(ConnectError, match="closed"):
            await client.request("GET", "/")
        for conn in srv.conns:
            await asyncio.wait_for(conn.eof.wait(), 1)


def test_under_uvloop() -> None:
    """Production runs on uvloop: the main paths must behave the same there."""

    async def main() -> None:
        async def handler(conn: ServerConn) -> None:
            while (req := await conn.read_request()) is not None:
                if req.target == "/hold":
                    conn.write(head_of(200, ("transfer-encoding", "chunked")) + chunk(b"p"))
                    await conn.drain()
                    await conn.wait_eof()
                    return
                await conn.respond(b"u" * 5000, chunked=req.target == "/c")

        async with RawServer(handler) as srv, HttpClient(srv.url, read_timeout=1) as client:
            for target in ("/", "/c", "/", "/c"):
                assert (await client.request("POST", target, body=b"b")).body == b"u" * 5000
            assert srv.accepted == 1
            async with client.stream("GET", "/hold") as stream:
                assert await anext(stream.iter_bytes()) == b"p"
            await asyncio.wait_for(srv.conns[-1].eof.wait(), EOF_WITHIN)
            with pytest.raises(ConnectError):
                async with HttpClient(f"http://127.0.0.1:{free_port()}") as refused:
                    await refused.request("GET", "/")

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


async def test_first_byte_limit_is_separate_from_the_idle_gap() -> None:
    """A slow-to-start answer (a non-streamed completion being generated) is bounded by
    the first-byte limit, not by the idle gap, which only counts once bytes flow."""

    async def slow_start(conn: ServerConn) -> None:
        await conn.read_request()
        await asyncio.sleep(0.3)  # longer than the idle limit, shorter than the first-byte one
        conn.write(head_of(200, ("transfer-encoding", "chunked")) + chunk(b"first"))
        await conn.drain()
        await asyncio.sleep(0.3)  # then a stall mid-body, longer than the idle limit
        conn.write(chunk(b"late") + b"0\r\n\r\n")
        await conn.drain()
        await serve_forever(conn)

    async with (
        RawServer(slow_start) as srv,
        HttpClient(srv.url, read_timeout=0.15, first_byte_timeout=1.0) as client,
        client.stream("GET", "/") as stream,
    ):
        assert stream.status == 200
        assert await anext(stream.iter_bytes()) == b"first"
        with pytest.raises(ReadTimeout) as info:
            await anext(stream.iter_bytes())
        assert not isinstance(info.value, FirstByteTimeout)

    async def never(conn: ServerConn) -> None:
        await conn.read_request()
        await asyncio.sleep(5)

    async with (
        RawServer(never) as srv,
        HttpClient(srv.url, read_timeout=5.0, first_byte_timeout=0.1) as client,
    ):
        started = time.monotonic()
        with pytest.raises(FirstByteTimeout):
            await client.request("GET", "/")
        assert time.monotonic() - started < 1.0


async def test_the_requests_deadline_from_call_limits_ends_the_exchange() -> None:
    """The router passes the request's deadline in CallLimits; the client enforces it with
    the timer it arms anyway, before and after the first byte."""
    from llm_gateway.core.context import CALL_LIMITS, CallLimits
    from llm_gateway.http.errors import DeadlineExceeded

    async def trickle(conn: ServerConn) -> None:
        await conn.read_request()
        conn.write(head_of(200, ("transfer-encoding", "chunked")))
        for _ in range(50):  # a byte every 50 ms: never idle, never done
            conn.write(chunk(b"x"))
            await conn.drain()
            await asyncio.sleep(0.05)

    async with RawServer(trickle) as srv, HttpClient(srv.url, read_timeout=5.0) as client:
        loop = asyncio.get_running_loop()
        token = CALL_LIMITS.set(CallLimits(deadline=loop.time() + 0.3))
        try:
            started = time.monotonic()
            with pytest.raises(DeadlineExceeded):
                await client.request("GET", "/")
            assert 0.25 < time.monotonic() - started < 1.0
        finally:
            CALL_LIMITS.reset(token)
