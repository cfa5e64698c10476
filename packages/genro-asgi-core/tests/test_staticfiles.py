"""StaticRouter and FileResponse: types, validators, 304, ranges, HEAD/405/404, containment.

Most tests mount a StaticRouter on an AsgiServer and use the in-process TestClient. The client
(like httpx in general) normalises ``..`` and decodes the path, so hostile paths are also sent
as raw ASGI scopes (``raw_call``) and, end to end, as raw HTTP to a real uvicorn.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import socket
from collections.abc import Iterator, Sequence
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from genro_asgi import AsgiApplication, AsgiServer, ConfigError, route
from genro_asgi.staticfiles import (
    FileResponse,
    RangeNotSatisfiable,
    StaticRouter,
    content_disposition,
    guess_media_type,
    parse_range,
)
from genro_asgi.testing import LiveServer, TestClient

SECRET = b"TOP-SECRET-CONTENT"
HELLO = b"hello, static world\n"
DIGITS = b"0123456789"


# -- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
def public(tmp_path: Path) -> Path:
    """A served directory, with a secret next to it (outside) that must never be served."""
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_bytes(SECRET)
    root = tmp_path / "public"
    root.mkdir()
    (root / "hello.txt").write_bytes(HELLO)
    (root / "digits.txt").write_bytes(DIGITS)
    (root / "style.css").write_text("body { color: red }\n")
    (root / "app.js").write_text("console.log(1)\n")
    (root / "data.json").write_text('{"a": 1}')
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "archive.tar.gz").write_bytes(b"\x1f\x8b")
    (root / "noext").write_bytes(b"raw")
    (root / "empty.txt").write_bytes(b"")
    (root / "index.html").write_text("<h1>root</h1>")
    (root / "sub").mkdir()
    (root / "sub" / "index.html").write_text("<h1>sub</h1>")
    (root / "sub" / "page.txt").write_text("in sub")
    (root / "bare").mkdir()
    (root / "bare" / "file.txt").write_text("no index here")
    (root / ".env").write_bytes(SECRET)
    (root / ".well-known").mkdir()
    (root / ".well-known" / "acme.txt").write_text("challenge")
    return root


@pytest.fixture
def server(tmp_path: Path, public: Path) -> AsgiServer:
    server = AsgiServer(tmp_path, config={}, environ={})
    server.mount("/static", StaticRouter(public))
    return server


@pytest.fixture
def client(server: AsgiServer) -> Iterator[TestClient]:
    with TestClient(server) as c:
        yield c


def serve(tmp_path: Path, router: StaticRouter) -> TestClient:
    server = AsgiServer(tmp_path, config={}, environ={})
    server.mount("/static", router)
    return TestClient(server)


class Recorded:
    def __init__(self) -> None:
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.more_body: list[bool] = []

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


async def _raw_call(app: Any, path: str, raw_path: bytes | None = None, *,
                    method: str = "GET", headers: Sequence[tuple[bytes, bytes]] = (),
                    disconnect: bool = False) -> Recorded:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path,
        "raw_path": raw_path if raw_path is not None else path.encode("utf-8"),
        "query_string": b"", "root_path": "", "headers": list(headers),
        "client": ("127.0.0.1", 40000), "server": ("testserver", 80),
    }
    recorded = Recorded()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if requested or disconnect:
            if not disconnect:
                await asyncio.Event().wait()  # a client that stays connected
            return {"type": "http.disconnect"}
        requested = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            recorded.status = message["status"]
            recorded.headers = {k.decode(): v.decode("latin-1") for k, v in message["headers"]}
        else:
            recorded.chunks.append(message.get("body", b""))
            recorded.more_body.append(message.get("more_body", False))

    await app(scope, receive, send)
    return recorded


def raw_call(app: Any, path: str, raw_path: bytes | None = None, **kwargs: Any) -> Recorded:
    return asyncio.run(_raw_call(app, path, raw_path, **kwargs))


def etag_of(client: TestClient, path: str) -> str:
    etag = client.get(path).headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    return etag


# -- content and headers --------------------------------------------------------------------


@pytest.mark.parametrize(("name", "media_type"), [
    ("hello.txt", "text/plain; charset=utf-8"),
    ("style.css", "text/css; charset=utf-8"),
    ("app.js", "text/javascript; charset=utf-8"),
    ("index.html", "text/html; charset=utf-8"),
    ("data.json", "application/json"),
    ("image.png", "image/png"),
    ("archive.tar.gz", "application/gzip"),
    ("noext", "application/octet-stream"),
])
def test_content_type(client: TestClient, public: Path, name: str, media_type: str) -> None:
    response = client.get(f"/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.content == (public / name).read_bytes()
    assert response.headers["content-length"] == str((public / name).stat().st_size)


def test_validators_and_accept_ranges(client: TestClient, public: Path) -> None:
    response = client.get("/static/hello.txt")
    st = (public / "hello.txt").stat()
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["last-modified"] == formatdate(st.st_mtime, usegmt=True)
    assert response.headers["etag"] == f'"{st.st_mtime_ns:x}-{st.st_size:x}"'


def test_etag_changes_with_the_file(client: TestClient, public: Path) -> None:
    before = etag_of(client, "/static/hello.txt")
    st = (public / "hello.txt").stat()
    (public / "hello.txt").write_bytes(HELLO + b"more")
    os.utime(public / "hello.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert etag_of(client, "/static/hello.txt") != before


def test_empty_file(client: TestClient) -> None:
    response = client.get("/static/empty.txt")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "0"


def test_cache_control_and_custom_media_types(tmp_path: Path, public: Path) -> None:
    (public / "notes.log").write_text("log line")
    router = StaticRouter(public, cache_control="public, max-age=60",
                          media_types={".LOG": "text/plain"})
    with serve(tmp_path, router) as c:
        response = c.get("/static/notes.log")
        assert response.headers["cache-control"] == "public, max-age=60"
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        etag = response.headers["etag"]
        not_modified = c.get("/static/notes.log", headers={"if-none-match": etag})
        assert not_modified.status_code == 304
        assert not_modified.headers["cache-control"] == "public, max-age=60"


# -- directories and index ------------------------------------------------------------------


def test_index_of_the_root_and_of_a_subdirectory(client: TestClient) -> None:
    assert client.get("/static/").text == "<h1>root</h1>"
    response = client.get("/static/sub/")
    assert response.text == "<h1>sub</h1>"
    assert response.headers["content-type"] == "text/html; charset=utf-8"


def test_the_bare_mount_prefix_redirects_to_the_slash(client: TestClient) -> None:
    """/static and /static/ reach the router as the same path: the dispatcher redirects the
    first, so relative links in the top index.html resolve under /static/."""
    response = client.get("/static")
    assert response.status_code == 307 and response.headers["location"] == "static/"
    assert client.head("/static").status_code == 307
    assert client.get("/static?v=1").headers["location"] == "static/?v=1"
    followed = client.get("/static", follow_redirects=True)
    assert str(followed.url).endswith("/static/") and followed.text == "<h1>root</h1>"
    assert client.post("/static").status_code == 405  # other methods are the router's


def test_a_nested_prefix_redirects_to_its_last_segment(make_server: Any, make_client: Any,
                                                       tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<h1>nested</h1>")
    server = make_server()
    server.mount("/assets/v2", StaticRouter(tmp_path / "site"))
    client = make_client(server)
    assert client.get("/assets/v2").headers["location"] == "v2/"
    assert client.get("/assets/v2", follow_redirects=True).text == "<h1>nested</h1>"


def test_directory_without_slash_redirects(client: TestClient) -> None:
    response = client.get("/static/sub")
    assert response.status_code == 307
    assert response.headers["location"] == "sub/"
    assert client.get("/static/sub?v=1").headers["location"] == "sub/?v=1"
    followed = client.get("/static/sub", follow_redirects=True)
    assert followed.status_code == 200
    assert str(followed.url).endswith("/static/sub/")
    assert followed.text == "<h1>sub</h1>"


def test_directory_without_index_is_404(client: TestClient) -> None:
    assert client.get("/static/bare/").status_code == 404
    assert client.get("/static/bare").status_code == 404  # no redirect to a 404
    assert client.get("/static/bare/file.txt").text == "no index here"


def test_index_none_disables_directories(tmp_path: Path, public: Path) -> None:
    with serve(tmp_path, StaticRouter(public, index=None)) as c:
        assert c.get("/static/").status_code == 404
        assert c.get("/static/sub/").status_code == 404
        assert c.get("/static/sub/page.txt").status_code == 200


def test_custom_index_name(tmp_path: Path, public: Path) -> None:
    (public / "sub" / "home.htm").write_text("home")
    with serve(tmp_path, StaticRouter(public, index="home.htm")) as c:
        assert c.get("/static/sub/").text == "home"
        assert c.get("/static/").status_code == 404


def test_file_with_trailing_slash_is_404(client: TestClient) -> None:
    assert client.get("/static/hello.txt/").status_code == 404


def test_html_mode(tmp_path: Path, public: Path) -> None:
    (public / "about.html").write_text("<p>about</p>")
    (public / "404.html").write_text("<p>lost</p>")
    with serve(tmp_path, StaticRouter(public, html=True)) as c:
        assert c.get("/static/about").text == "<p>about</p>"
        assert c.get("/static/about").headers["content-type"] == "text/html; charset=utf-8"
        assert c.get("/static/about.html").text == "<p>about</p>"
        missing = c.get("/static/nowhere", headers={"range": "bytes=0-1"})
        assert missing.status_code == 404
        assert missing.text == "<p>lost</p>"
    with serve(tmp_path, StaticRouter(public)) as c:
        assert c.get("/static/about").status_code == 404


# -- conditional requests -------------------------------------------------------------------


def test_if_none_match_gives_304(client: TestClient) -> None:
    etag = etag_of(client, "/static/hello.txt")
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = client.get("/static/hello.txt", headers={"if-none-match": header})
        assert response.status_code == 304, header
        assert response.content == b""
        assert response.headers["etag"] == etag
        assert "content-length" not in response.headers
        assert "content-type" not in response.headers
    assert client.get("/static/hello.txt", headers={"if-none-match": '"x"'}).status_code == 200


def test_head_honours_if_none_match(client: TestClient) -> None:
    etag = etag_of(client, "/static/hello.txt")
    assert client.head("/static/hello.txt", headers={"if-none-match": etag}).status_code == 304


def test_if_modified_since(client: TestClient, public: Path) -> None:
    mtime = (public / "hello.txt").stat().st_mtime
    later = formatdate(mtime + 60, usegmt=True)
    same = formatdate(mtime, usegmt=True)
    earlier = formatdate(mtime - 3600, usegmt=True)
    assert client.get("/static/hello.txt", headers={"if-modified-since": later}).status_code == 304
    assert client.get("/static/hello.txt", headers={"if-modified-since": same}).status_code == 304
    response = client.get("/static/hello.txt", headers={"if-modified-since": earlier})
    assert response.status_code == 200
    assert response.content == HELLO
    garbage = client.get("/static/hello.txt", headers={"if-modified-since": "yesterday"})
    assert garbage.status_code == 200


def test_if_none_match_takes_precedence(client: TestClient, public: Path) -> None:
    later = formatdate((public / "hello.txt").stat().st_mtime + 60, usegmt=True)
    response = client.get("/static/hello.txt",
                          headers={"if-none-match": '"stale"', "if-modified-since": later})
    assert response.status_code == 200
    assert response.content == HELLO


# -- ranges ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "first", "last"), [
    ("bytes=0-4", 0, 4),
    ("bytes=3-3", 3, 3),
    ("bytes=5-", 5, 9),
    ("bytes=-3", 7, 9),
    ("bytes=-100", 0, 9),
    ("bytes=8-100", 8, 9),
    ("BYTES=2-4", 2, 4),
])
def test_single_range_gives_206(client: TestClient, header: str, first: int, last: int) -> None:
    response = client.get("/static/digits.txt", headers={"range": header})
    assert response.status_code == 206
    assert response.content == DIGITS[first:last + 1]
    assert response.headers["content-range"] == f"bytes {first}-{last}/10"
    assert response.headers["content-length"] == str(last - first + 1)
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize("header", ["bytes=10-", "bytes=10-20", "bytes=99-", "bytes=-0"])
def test_unsatisfiable_range_gives_416(client: TestClient, header: str) -> None:
    response = client.get("/static/digits.txt", headers={"range": header})
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */10"
    assert DIGITS not in response.content


def test_any_range_of_an_empty_file_is_416(client: TestClient) -> None:
    response = client.get("/static/empty.txt", headers={"range": "bytes=0-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */0"


@pytest.mark.parametrize("header", [
    "bytes=5-2", "bytes=abc", "bytes=-", "bytes=1-2-3", "items=0-1", "bytes 0-1", "",
    "bytes=0-1,4-5", "bytes=0-1, 20-30", "bytes=" + "9" * 100 + "-",
])
def test_malformed_or_multiple_ranges_serve_the_whole_file(client: TestClient,
                                                           header: str) -> None:
    response = client.get("/static/digits.txt", headers={"range": header})
    assert response.status_code == 200
    assert response.content == DIGITS
    assert "content-range" not in response.headers


def test_if_range(client: TestClient, public: Path) -> None:
    etag = etag_of(client, "/static/digits.txt")
    mtime = (public / "digits.txt").stat().st_mtime
    cases = {
        etag: 206,
        '"stale"': 200,
        f"W/{etag}": 200,  # If-Range needs a strong comparison
        formatdate(mtime, usegmt=True): 206,
        formatdate(mtime - 3600, usegmt=True): 200,
        "not a date": 200,
    }
    for if_range, status in cases.items():
        response = client.get("/static/digits.txt",
                              headers={"range": "bytes=0-1", "if-range": if_range})
        assert response.status_code == status, if_range
        assert response.content == (DIGITS[:2] if status == 206 else DIGITS)


def test_range_on_head_is_ignored(client: TestClient) -> None:
    response = client.head("/static/digits.txt", headers={"range": "bytes=0-1"})
    assert response.status_code == 200
    assert response.headers["content-length"] == "10"


# -- methods and missing files --------------------------------------------------------------


def test_head_sends_headers_only(client: TestClient) -> None:
    response = client.head("/static/hello.txt")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(len(HELLO))
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert "etag" in response.headers


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_405(client: TestClient, method: str) -> None:
    response = client.request(method, "/static/hello.txt")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert response.json()["error"]["status"] == 405


def test_missing_file_is_404_rendered_by_the_server(client: TestClient) -> None:
    response = client.get("/static/nope.txt")
    assert response.status_code == 404
    assert response.json()["error"]["status"] == 404
    html = client.get("/static/nope.txt", headers={"accept": "text/html"})
    assert html.status_code == 404
    assert html.headers["content-type"].startswith("text/html")
    assert client.head("/static/nope.txt").status_code == 404


def test_standalone_router_answers_plain_text_errors(public: Path) -> None:
    with TestClient(StaticRouter(public)) as c:
        assert c.get("/hello.txt").content == HELLO
        missing = c.get("/nope.txt")
        assert missing.status_code == 404
        assert missing.text == "Not Found"
        assert c.post("/hello.txt").headers["allow"] == "GET, HEAD"
        unsatisfiable = c.get("/digits.txt", headers={"range": "bytes=50-"})
        assert unsatisfiable.status_code == 416
        assert unsatisfiable.headers["content-range"] == "bytes */10"


def test_websocket_scope_is_closed(public: Path) -> None:
    router = StaticRouter(public)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(router({"type": "websocket", "path": "/"}, receive, send))
    assert sent == [{"type": "websocket.close", "code": 1008}]


# -- containment ----------------------------------------------------------------------------


HOSTILE_SCOPES = [
    ("/../secret.txt", b"/../secret.txt"),
    ("/../secret.txt", b"/%2e%2e/secret.txt"),
    ("/../secret.txt", b"/%2E%2E/secret.txt"),
    ("/../secret.txt", b"/.%2e/secret.txt"),
    ("/../secret.txt", b"/..%2fsecret.txt"),
    ("/..\\secret.txt", b"/%2e%2e%5csecret.txt"),
    ("/..\\secret.txt", b"/..\\secret.txt"),
    ("/sub/../../secret.txt", b"/sub/../../secret.txt"),
    ("/../outside/secret.txt", b"/../outside/secret.txt"),
    ("/./hello.txt", b"/./hello.txt"),
    ("//etc/passwd", b"//etc/passwd"),
    ("/hello.txt\x00.png", b"/hello.txt%00.png"),
    ("/\x00", b"/%00"),
    # the decoded path looks harmless, the raw one hides a separator or a dot segment
    ("/sub/page.txt", b"/sub%2fpage.txt"),
    ("/sub/page.txt", b"/sub/%2e/page.txt"),
    ("/hello.txt", b"/%2e%2e%2fpublic/hello.txt"),
]


@pytest.mark.parametrize(("path", "raw_path"), HOSTILE_SCOPES)
def test_hostile_paths_never_leave_the_directory(public: Path, path: str,
                                                 raw_path: bytes) -> None:
    for router in (StaticRouter(public), StaticRouter(public, follow_symlinks=True,
                                                      allow_hidden=True)):
        recorded = raw_call(router, path, raw_path)
        assert recorded.status == 404, (path, raw_path)
        assert SECRET not in recorded.body


def test_absolute_path_segments_are_refused(tmp_path: Path, public: Path) -> None:
    absolute = str(tmp_path / "secret.txt")
    recorded = raw_call(StaticRouter(public), "/" + absolute)  # "//tmp/.../secret.txt"
    assert recorded.status == 404
    assert SECRET not in recorded.body


def test_hostile_paths_through_the_server(server: AsgiServer) -> None:
    for path, raw in [("/static/../secret.txt", b"/static/%2e%2e/secret.txt"),
                      ("/static//etc/passwd", b"/static//etc/passwd"),
                      ("/static/..\\secret.txt", b"/static/..%5csecret.txt")]:
        recorded = raw_call(server, path, raw)
        assert recorded.status == 404
        assert SECRET not in recorded.body


def test_symlink_out_of_the_directory_is_refused(tmp_path: Path, public: Path) -> None:
    (public / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (public / "outdir").symlink_to(tmp_path / "outside", target_is_directory=True)
    with serve(tmp_path, StaticRouter(public)) as c:
        for path in ("/static/leak.txt", "/static/outdir/secret.txt", "/static/outdir/"):
            response = c.get(path)
            assert response.status_code == 404, path
            assert SECRET not in response.content


def test_symlink_out_of_the_directory_with_follow_symlinks(tmp_path: Path,
                                                           public: Path) -> None:
    (public / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (public / "outdir").symlink_to(tmp_path / "outside", target_is_directory=True)
    with serve(tmp_path, StaticRouter(public, follow_symlinks=True)) as c:
        assert c.get("/static/leak.txt").content == SECRET
        assert c.get("/static/outdir/secret.txt").content == SECRET
        assert c.get("/static/../secret.txt").status_code == 404  # still no dot segments


def test_symlink_inside_the_directory_is_served(public: Path, tmp_path: Path) -> None:
    (public / "alias.txt").symlink_to(public / "hello.txt")
    (public / "latest").symlink_to(public / "style.css")
    (public / "subalias").symlink_to(public / "sub", target_is_directory=True)
    with serve(tmp_path, StaticRouter(public)) as c:
        response = c.get("/static/alias.txt")
        assert response.content == HELLO
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        # a name without a suffix takes its target's type
        assert c.get("/static/latest").headers["content-type"] == "text/css; charset=utf-8"
        assert c.get("/static/subalias/page.txt").text == "in sub"


def test_symlinked_root_directory(tmp_path: Path, public: Path) -> None:
    (tmp_path / "site").symlink_to(public, target_is_directory=True)
    with serve(tmp_path, StaticRouter(tmp_path / "site")) as c:
        assert c.get("/static/hello.txt").content == HELLO


def test_hidden_files_are_refused_by_default(tmp_path: Path, public: Path) -> None:
    (public / "config.txt").symlink_to(public / ".env")
    with serve(tmp_path, StaticRouter(public)) as c:
        for path in ("/static/.env", "/static/.well-known/acme.txt", "/static/config.txt"):
            response = c.get(path)
            assert response.status_code == 404, path
            assert SECRET not in response.content


def test_hidden_files_with_allow_hidden(tmp_path: Path, public: Path) -> None:
    with serve(tmp_path, StaticRouter(public, allow_hidden=True)) as c:
        assert c.get("/static/.well-known/acme.txt").text == "challenge"
        assert c.get("/static/.env").content == SECRET


def test_special_files_are_not_served(tmp_path: Path, public: Path) -> None:
    os.mkfifo(public / "pipe.txt")
    with serve(tmp_path, StaticRouter(public)) as c:
        assert c.get("/static/pipe.txt").status_code == 404


# -- large files ----------------------------------------------------------------------------


def big_payload(size: int) -> bytes:
    return bytes(i * 7 % 251 for i in range(size))


def test_large_file_is_streamed_in_chunks(public: Path) -> None:
    payload = big_payload(3 * 1024 * 1024 + 12345)
    (public / "big.bin").write_bytes(payload)
    recorded = raw_call(StaticRouter(public), "/big.bin")
    assert recorded.status == 200
    assert recorded.body == payload
    assert recorded.headers["content-length"] == str(len(payload))
    assert len(recorded.chunks) == -(-len(payload) // (64 * 1024))
    assert all(len(chunk) <= 64 * 1024 for chunk in recorded.chunks)
    assert recorded.more_body == [True] * (len(recorded.chunks) - 1) + [False]


def test_large_file_range_spans_chunks(client: TestClient, public: Path) -> None:
    payload = big_payload(1024 * 1024)
    (public / "big.bin").write_bytes(payload)
    response = client.get("/static/big.bin", headers={"range": "bytes=65000-300000"})
    assert response.status_code == 206
    assert response.content == payload[65000:300001]
    assert response.headers["content-range"] == f"bytes 65000-300000/{len(payload)}"


def test_large_file_through_the_server_client(client: TestClient, public: Path) -> None:
    payload = big_payload(2 * 1024 * 1024)
    (public / "big.bin").write_bytes(payload)
    assert client.get("/static/big.bin").content == payload


def test_streaming_stops_when_the_client_disconnects(public: Path) -> None:
    payload = big_payload(4 * 1024 * 1024)
    (public / "big.bin").write_bytes(payload)
    recorded = raw_call(StaticRouter(public), "/big.bin", disconnect=True)
    assert recorded.status == 200
    assert len(recorded.body) < len(payload)


def test_chunk_size_option(public: Path) -> None:
    recorded = raw_call(StaticRouter(public, chunk_size=4), "/digits.txt")
    assert recorded.body == DIGITS
    assert [len(c) for c in recorded.chunks] == [4, 4, 2]


# -- configuration --------------------------------------------------------------------------


def test_mount_from_config_resolves_the_directory(tmp_path: Path, public: Path) -> None:
    config = {"apps": {"docs": {"module": "genro_asgi.staticfiles:StaticRouter",
                                "directory": "public", "cache_control": "no-cache"}}}
    server = AsgiServer(tmp_path, config=config, environ={})
    router = server.apps["docs"]
    assert isinstance(router, StaticRouter)
    assert router.directory == os.path.realpath(public)
    with TestClient(server) as c:
        response = c.get("/docs/hello.txt")
        assert response.content == HELLO
        assert response.headers["cache-control"] == "no-cache"
        assert c.get("/docs/").text == "<h1>root</h1>"
        assert c.get("/docs/nope").json()["error"]["status"] == 404


def test_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nowhere"):
        StaticRouter(tmp_path / "nowhere")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"file\.txt"):
        StaticRouter(tmp_path / "file.txt")
    config = {"apps": {"docs": {"module": "genro_asgi.staticfiles:StaticRouter",
                                "directory": "missing"}}}
    with pytest.raises(ConfigError, match="missing"):
        AsgiServer(tmp_path, config=config, environ={})


@pytest.mark.parametrize("index", ["../index.html", "a/b.html", "", ".."])
def test_index_must_be_a_plain_name(public: Path, index: str) -> None:
    with pytest.raises(ConfigError, match="index"):
        StaticRouter(public, index=index)


def test_chunk_size_must_be_positive(public: Path) -> None:
    with pytest.raises(ConfigError, match="chunk_size"):
        StaticRouter(public, chunk_size=0)


def test_router_does_not_keep_the_server_alive(tmp_path: Path, public: Path) -> None:
    import gc
    import weakref

    server = AsgiServer(tmp_path, config={}, environ={})
    router = StaticRouter(public)
    server.mount("/static", router)
    ref = weakref.ref(server)
    del server
    gc.collect()
    assert ref() is None
    assert raw_call(router, "/nope").status == 404  # falls back to plain errors


# -- FileResponse from a handler ------------------------------------------------------------


def test_file_response_from_a_route(tmp_path: Path, public: Path) -> None:
    report = public / "digits.txt"

    class Files(AsgiApplication):
        @route()
        def report(self) -> FileResponse:
            return FileResponse(report, filename="report 2024.txt")

        @route()
        def gone(self) -> FileResponse:
            return FileResponse(tmp_path / "vanished.bin")

    server = AsgiServer(tmp_path, config={}, environ={})
    server.mount("/files", Files())
    with TestClient(server) as c:
        response = c.get("/files/report")
        assert response.content == DIGITS
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert response.headers["content-disposition"] == 'attachment; filename="report 2024.txt"'
        partial = c.get("/files/report", headers={"range": "bytes=-2"})
        assert partial.status_code == 206
        assert partial.content == b"89"
        assert c.get("/files/report", headers={"range": "bytes=90-"}).status_code == 416
        assert c.get("/files/gone").status_code == 404


def test_file_response_with_a_custom_status_ignores_conditions(public: Path) -> None:
    response = FileResponse(public / "digits.txt", status_code=404)

    async def call() -> Recorded:
        return await _raw_call(response, "/", headers=[(b"range", b"bytes=0-1")])

    recorded = asyncio.run(call())
    assert recorded.status == 404
    assert recorded.body == DIGITS


def test_file_response_keeps_its_own_headers_but_not_framing(public: Path) -> None:
    response = FileResponse(public / "digits.txt", headers={"Content-Length": "999",
                                                           "X-Extra": "1"},
                            media_type="text/x-custom")
    recorded = asyncio.run(_raw_call(response, "/"))
    assert recorded.headers["content-length"] == "10"
    assert recorded.headers["x-extra"] == "1"
    assert recorded.headers["content-type"] == "text/x-custom; charset=utf-8"


# -- helpers --------------------------------------------------------------------------------


def test_parse_range() -> None:
    assert parse_range("bytes=0-0", 5) == (0, 0)
    assert parse_range("bytes=2-", 5) == (2, 4)
    assert parse_range("bytes=-2", 5) == (3, 4)
    assert parse_range("bytes=0-99", 5) == (0, 4)
    assert parse_range("bytes=3-1", 5) is None
    assert parse_range("bytes=0-1,2-3", 5) is None
    with pytest.raises(RangeNotSatisfiable) as info:
        parse_range("bytes=5-", 5)
    assert info.value.status_code == 416
    assert info.value.headers == {"Content-Range": "bytes */5"}


def test_content_disposition() -> None:
    assert content_disposition("a.pdf") == 'attachment; filename="a.pdf"'
    assert content_disposition('a"b.pdf') == "attachment; filename*=utf-8''a%22b.pdf"
    assert content_disposition("è.pdf") == "attachment; filename*=utf-8''%C3%A8.pdf"
    assert "\n" not in content_disposition("a\r\nSet-Cookie: x=1")


def test_guess_media_type() -> None:
    assert guess_media_type("x.JS") == "text/javascript"
    assert guess_media_type("x.woff2") == "font/woff2"
    assert guess_media_type("x.tar.bz2") == "application/x-bzip2"
    assert guess_media_type("x") == "application/octet-stream"
    assert guess_media_type("x.foo", {".foo": "text/foo"}) == "text/foo"


# -- end to end: raw HTTP to a real uvicorn -------------------------------------------------


def raw_http(host: str, port: int, target: bytes, method: bytes = b"GET") -> tuple[int, bytes]:
    """One request with the target sent byte for byte (no client-side normalisation)."""
    request = (method + b" " + target + b" HTTP/1.1\r\nHost: localhost\r\n"
               b"Connection: close\r\n\r\n")
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status_line = data.split(b"\r\n", 1)[0]
    return int(status_line.split()[1]), data


E2E_HOSTILE = [
    b"/static/../secret.txt",
    b"/static/../../secret.txt",
    b"/static/%2e%2e/secret.txt",
    b"/static/%2E%2E/secret.txt",
    b"/static/.%2e/secret.txt",
    b"/static/..%2fsecret.txt",
    b"/static/%2e%2e%2fsecret.txt",
    b"/static/%2e%2e%5csecret.txt",
    b"/static/..\\secret.txt",
    b"/static/sub/..%2f..%2fsecret.txt",
    b"/static/%2e%2e/outside/secret.txt",
    b"/static//etc/passwd",
    b"/static/%2fetc%2fpasswd",
    b"/static/hello.txt%00.png",
    b"/static/%00",
    b"/static/leak.txt",
    b"/static/outdir/secret.txt",
    b"/static/.env",
]


@pytest.mark.e2e
def test_end_to_end_hostile_requests(tmp_path: Path, public: Path, server: AsgiServer) -> None:
    (public / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (public / "outdir").symlink_to(tmp_path / "outside", target_is_directory=True)
    with LiveServer(server) as live:
        status, data = raw_http(live.host, live.port, b"/static/hello.txt")
        assert status == 200
        assert data.endswith(HELLO)
        for target in E2E_HOSTILE:
            status, data = raw_http(live.host, live.port, target)
            assert 400 <= status < 500, target
            assert SECRET not in data, target


@pytest.mark.e2e
def test_end_to_end_with_http_client(server: AsgiServer, public: Path) -> None:
    payload = big_payload(3 * 1024 * 1024)
    (public / "big.bin").write_bytes(payload)
    with LiveServer(server) as live:
        conn = http.client.HTTPConnection(live.host, live.port, timeout=10)
        try:
            conn.request("GET", "/static/big.bin")
            response = conn.getresponse()
            assert response.status == 200
            assert response.read() == payload
            conn.request("GET", "/static/digits.txt", headers={"Range": "bytes=-4"})
            response = conn.getresponse()
            assert response.status == 206
            assert response.read() == b"6789"
            conn.request("HEAD", "/static/hello.txt")
            response = conn.getresponse()
            assert response.status == 200
            assert response.getheader("content-length") == str(len(HELLO))
            assert response.read() == b""
            conn.request("GET", "/static/%2e%2e/secret.txt")
            response = conn.getresponse()
            assert response.status == 404
            assert SECRET not in response.read()
        finally:
            conn.close()
