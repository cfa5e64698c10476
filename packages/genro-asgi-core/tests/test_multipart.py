"""multipart/form-data: upload objects bound to handler parameters, streaming to disk above the
spool size, every limit (413 for sizes, 400 for counts and malformed bodies), cleanup of the
temporary files on success, error and disconnect, and the 415 without python-multipart."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from genro_asgi import AsgiApplication, Request, UploadFile, route, safe_filename

BOUNDARY = "xBoUnDaRy"
MULTIPART = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


class Uploads(AsgiApplication):
    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.seen: list[UploadFile] = []

    @route(methods=["POST"])
    def one(self, doc: UploadFile, title: str = "", n: int = 0) -> dict[str, Any]:
        data = doc.file.read()
        return {"filename": doc.filename, "content_type": doc.content_type, "size": doc.size,
                "sha": hashlib.sha256(data).hexdigest(), "title": title, "n": n,
                "on_disk": doc.on_disk, "extra": doc.headers.get("x-extra"),
                "open_in_dir": open_files(self.config.get("upload_dir"))}

    @route(methods=["POST"])
    async def many(self, docs: list[UploadFile], tags: list[str] | None = None) -> dict[str, Any]:
        return {"files": [[d.filename, (await d.read()).decode()] for d in docs], "tags": tags}

    @route(methods=["POST"])
    async def optional(self, doc: UploadFile | None = None, note: str = "") -> dict[str, Any]:
        return {"doc": None if doc is None else doc.filename, "note": note}

    @route(methods=["POST"])
    async def kept(self, doc: UploadFile) -> dict[str, Any]:
        self.seen.append(doc)
        await doc.seek(2)
        return {"rest": (await doc.read()).decode(), "closed": doc.closed}

    @route(methods=["POST"])
    async def raw(self, request: Request) -> list[list[Any]]:
        return [[name, value if isinstance(value, str) else value.filename]
                for name, value in await request.multipart()]

    @route(methods=["POST"])
    def loose(self, **values: Any) -> dict[str, str]:
        return {name: type(value).__name__ for name, value in values.items()}

    @route(methods=["POST"])
    def scalar(self, n: int, label: str = "") -> dict[str, Any]:
        return {"n": n, "label": label}


def open_files(directory: str | None) -> int:
    """Descriptors of this process open on files in ``directory`` (anonymous ones included)."""
    if directory is None:
        return -1
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        count += target.startswith(directory + "/")
    return count


def part(name: str, value: bytes, filename: str | None = None,
         headers: str = "") -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    return (f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n{headers}\r\n").encode() \
        + value + b"\r\n"


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


@pytest.fixture
def upload_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "uploads"
    directory.mkdir()
    return directory


@pytest.fixture
def app(upload_dir: Path) -> Uploads:
    return Uploads(upload_dir=str(upload_dir))


@pytest.fixture
def server(make_server: Any, upload_dir: Path, app: Uploads) -> Any:
    server = make_server({"server": {"upload_dir": str(upload_dir), "upload_spool_size": 1024,
                                     "max_upload_parts": 8, "max_upload_file_size": 300_000,
                                     "max_upload_field_size": 200,
                                     "max_upload_part_header_size": 300,
                                     "max_upload_size": 400_000}})
    server.mount("/u", app)
    return server


@pytest.fixture
def client(server: Any, make_client: Any) -> Any:
    return make_client(server)


def message(response: Any) -> str:
    text: str = response.json()["error"]["message"]
    return text


def assert_clean(upload_dir: Path) -> None:
    assert os.listdir(upload_dir) == []
    assert open_files(str(upload_dir)) == 0


# -- happy paths ------------------------------------------------------------------------------

def test_one_file_and_fields_bind_and_coerce(client: Any, upload_dir: Path) -> None:
    response = client.post("/u/one", files={"doc": ("a.txt", b"hello", "text/plain")},
                           data={"title": "T", "n": "7"})
    assert response.status_code == 200, response.text
    got = response.json()
    assert got["filename"] == "a.txt"
    assert got["content_type"] == "text/plain"
    assert got["size"] == 5
    assert got["sha"] == hashlib.sha256(b"hello").hexdigest()
    assert (got["title"], got["n"], got["on_disk"]) == ("T", 7, False)
    assert_clean(upload_dir)


def test_a_file_over_the_spool_size_goes_to_disk_and_is_removed(client: Any,
                                                                  upload_dir: Path) -> None:
    data = os.urandom(200_000)
    response = client.post("/u/one", files={"doc": ("big.bin", data)})
    assert response.status_code == 200, response.text
    got = response.json()
    assert got["size"] == len(data)
    assert got["sha"] == hashlib.sha256(data).hexdigest()
    assert got["on_disk"] is True
    assert got["open_in_dir"] == 1  # the handler saw it in upload_dir, as a nameless file
    assert_clean(upload_dir)


def test_part_headers_reach_the_upload(client: Any) -> None:
    payload = body(part("doc", b"x", "a.bin", "Content-Type: image/png\r\nX-Extra: yes\r\n"))
    got = client.post("/u/one", content=payload, headers=MULTIPART).json()
    assert (got["content_type"], got["extra"]) == ("image/png", "yes")


def test_repeated_fields_bind_to_lists(client: Any) -> None:
    response = client.post("/u/many", files=[("docs", ("1.txt", b"one")),
                                             ("docs", ("2.txt", b"two"))],
                           data={"tags": ["a", "b"]})
    assert response.json() == {"files": [["1.txt", "one"], ["2.txt", "two"]],
                               "tags": ["a", "b"]}
    once = client.post("/u/many", files={"docs": ("1.txt", b"one")}, data={"tags": "a"})
    assert once.json() == {"files": [["1.txt", "one"]], "tags": ["a"]}


def test_optional_upload_and_empty_filename(client: Any) -> None:
    assert client.post("/u/optional", files={"note": (None, b"n")}).json() == \
        {"doc": None, "note": "n"}
    payload = body(part("doc", b"", ""))  # a browser's empty file input
    assert client.post("/u/optional", content=payload, headers=MULTIPART).json() == \
        {"doc": "", "note": ""}


def test_files_are_closed_when_the_handler_returns(client: Any, app: Uploads) -> None:
    response = client.post("/u/kept", files={"doc": ("k.txt", b"abcdef")})
    assert response.json() == {"rest": "cdef", "closed": False}
    assert app.seen[0].closed


def test_a_handler_taking_the_request_reads_the_parts_itself(client: Any) -> None:
    response = client.post("/u/raw", files={"f": ("r.txt", b"r")}, data={"a": "1"})
    assert response.json() == [["a", "1"], ["f", "r.txt"]]


def test_kwargs_handler_gets_uploads_and_strings(client: Any) -> None:
    response = client.post("/u/loose", files={"f": ("r.txt", b"r")}, data={"a": "1"})
    assert response.json() == {"f": "UploadFile", "a": "str"}


def test_upload_size_is_separate_from_max_body_size(make_server: Any, make_client: Any,
                                                    upload_dir: Path) -> None:
    server = make_server({"server": {"max_body_size": 1000, "upload_dir": str(upload_dir)}})
    server.mount("/u", Uploads())
    client = make_client(server)
    data = b"z" * 5000
    assert client.post("/u/one", files={"doc": ("z", data)}).json()["size"] == 5000
    too_big = client.post("/u/scalar", json={"n": 1, "label": "x" * 2000})
    assert too_big.status_code == 413


# -- binding errors ---------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "files", "data", "expected"), [
    ("/u/one", None, {"doc": "text"}, "parameter 'doc' must be a file upload"),
    ("/u/one", [("doc", ("1", b"1")), ("doc", ("2", b"2"))], None, "one file expected, got 2"),
    ("/u/scalar", {"n": ("n.txt", b"1")}, None, "parameter 'n': a file was sent"),
    ("/u/scalar", {"label": ("l.txt", b"1")}, {"n": "1"}, "'label': Input should be a valid"),
    ("/u/scalar", None, {"n": ["1", "2"]}, "parameter 'n' given more than once"),
    ("/u/scalar", None, {"n": "x"}, "parameter 'n'"),
    ("/u/one", {"other": ("o", b"o")}, None, "unexpected parameter 'other'"),
    ("/u/one", None, {"title": "t"}, "missing required parameter 'doc'"),
])
def test_wrong_parts_for_the_parameters_are_400(client: Any, upload_dir: Path, path: str,
                                                files: Any, data: Any, expected: str) -> None:
    if files:
        response = client.post(path, files=files, data=data)
    else:  # fields only: httpx would send them urlencoded
        payload = body(*[part(k, v.encode()) for k, vs in data.items()
                         for v in (vs if isinstance(vs, list) else [vs])])
        response = client.post(path, content=payload, headers=MULTIPART)
    assert response.status_code == 400, response.text
    assert expected in message(response)
    assert_clean(upload_dir)


# -- limits -----------------------------------------------------------------------------------

def test_limits(client: Any, upload_dir: Path) -> None:
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"files": {"doc": ("big", b"x" * 300_001)}}, 413, "uploaded file 'doc' is larger "
         "than 300000 bytes"),
        ({"files": {"doc": ("a", b"a")}, "data": {"title": "t" * 201}}, 413,
         "multipart field 'title' is larger than 200 bytes"),
        ({"content": body(*[part(f"f{i}", b"v") for i in range(9)]), "headers": MULTIPART},
         400, "more than 8 parts"),
        ({"content": body(part("doc", b"x", "a", "X-Long: " + "h" * 300 + "\r\n")),
          "headers": MULTIPART}, 413, "headers of a multipart part are larger than 300 bytes"),
        ({"files": [("doc", ("a", b"a" * 200_000)), ("doc", ("b", b"b" * 200_001))]}, 413,
         "request body is larger than the limit of 400000 bytes"),
    ]
    for request, status, expected in cases:
        response = client.post("/u/loose", **request)
        assert response.status_code == status, (expected, response.text)
        assert expected in message(response)
        assert_clean(upload_dir)


async def test_total_size_is_checked_while_streaming_without_content_length(
        server: Any, asgi_call: Any, upload_dir: Path) -> None:
    # chunks arrive one by one and no Content-Length is declared: the reader stops at the limit
    chunks = [part("doc", b"x" * 100_000, "a")[:-2]] + [b"y" * 100_000] * 10
    sent = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        sent += 1
        if sent > len(chunks):
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunks[sent - 1], "more_body": True}

    status = await _call(server, receive, MULTIPART)
    assert status == 413
    assert sent < len(chunks)
    assert_clean(upload_dir)


# -- malformed bodies -------------------------------------------------------------------------

@pytest.mark.parametrize(("payload", "content_type", "expected"), [
    (body(part("a", b"1")), "multipart/form-data", "without a boundary parameter"),
    (body(part("a", b"1")), f"multipart/form-data; boundary={'b' * 201}", "longer than 200"),
    (b"--xBoUnDaRy\r\nbad header\r\n\r\nv\r\n--xBoUnDaRy--\r\n", None, "malformed multipart"),
    (b"--xBoUnDaRy\r\nX-Other: 1\r\n\r\nv\r\n--xBoUnDaRy--\r\n", None,
     "without a Content-Disposition"),
    (body(part("a", b"1")).replace(b"form-data;", b"attachment;"), None, "not form-data"),
    (b"--xBoUnDaRy\r\nContent-Disposition: form-data\r\n\r\nv\r\n--xBoUnDaRy--\r\n", None,
     "not form-data with a name"),
    (body(part("a", b"1"))[:-20], None, "ends before its closing boundary"),
    (body(part("doc", b"x" * 5000, "f"))[:3000], None, "ends before its closing boundary"),
    (part("a", b"1") + b"--xBoUnDaRy\r\n", None, "ends before its closing boundary"),
    (b"", None, "ends before its closing boundary"),
    (b"garbage", None, "malformed multipart body"),
    (body(part("a", b"\xff\xfe")), None, "field 'a' is not valid UTF-8"),
    (body(part("\xe9", b"1")).replace("\xe9".encode(), b"\xe9"), None, "name is not valid UTF-8"),
])
def test_malformed_bodies_are_400(client: Any, upload_dir: Path, payload: bytes,
                                  content_type: str | None, expected: str) -> None:
    headers = MULTIPART if content_type is None else {"content-type": content_type}
    response = client.post("/u/loose", content=payload, headers=headers)
    assert response.status_code == 400, response.text
    assert expected in message(response)
    assert_clean(upload_dir)


# -- disconnects and the missing extra --------------------------------------------------------

async def _call(server: Any, receive: Any, headers: dict[str, str],
                path: str = "/u/one") -> int | None:
    status: int | None = None
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "",
             "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
             "client": ("127.0.0.1", 40000), "server": ("testserver", 80)}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await server.startup()
    try:
        await asyncio.wait_for(server(scope, receive, send), 30)
    finally:
        await server.shutdown()
    return status


async def test_a_client_that_disconnects_mid_upload_leaves_no_file(server: Any,
                                                                   upload_dir: Path) -> None:
    chunks = [part("doc", b"x" * 50_000, "a")[:-2], b"y" * 50_000]
    sent = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        sent += 1
        if sent > len(chunks):
            assert open_files(str(upload_dir)) == 1  # spooled to disk, then the client left
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunks[sent - 1], "more_body": True}

    assert await _call(server, receive, MULTIPART) is None  # nobody left to answer
    assert sent == len(chunks) + 1
    assert_clean(upload_dir)


def test_without_python_multipart_the_body_is_415(client: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "python_multipart", None)  # import fails as if absent
    response = client.post("/u/one", files={"doc": ("a", b"a")})
    assert response.status_code == 415
    assert "pip install 'genro-asgi-core[multipart]'" in message(response)


# -- safe_filename ----------------------------------------------------------------------------

@pytest.mark.parametrize(("given", "expected"), [
    ("report.pdf", "report.pdf"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\me\\photo.jpg", "photo.jpg"),
    ("..", "upload"),
    (".bashrc", "bashrc"),
    ("", "upload"),
    ("a/", "upload"),
    ("evil\x00name;rm -rf.txt", "evil_name_rm -rf.txt"),
    ("\uff46\uff55\uff4c\uff4c.txt", "full.txt"),
    ("x" * 300, "x" * 200),
])
def test_safe_filename(given: str, expected: str) -> None:
    assert safe_filename(given) == expected


# -- reading the body twice -------------------------------------------------------------------

async def test_multipart_after_body_parses_the_cached_bytes_and_body_after_it_refuses() -> None:
    from genro_asgi.request import Request

    payload = body(part("a", b"1"), part("f", b"data", "f.txt"))
    messages = [{"type": "http.request", "body": payload, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"",
             "headers": [(b"content-type", MULTIPART["content-type"].encode())]}
    first = Request(scope, receive)
    assert await first.body() == payload
    items = await first.multipart()
    assert [name for name, _ in items] == ["a", "f"]
    await first.close_uploads()

    messages.append({"type": "http.request", "body": payload, "more_body": False})
    second = Request(scope, receive)
    assert (await second.multipart())[0] == ("a", "1")
    with pytest.raises(RuntimeError, match="already read by multipart"):
        await second.body()
    await second.close_uploads()
    assert all(upload.closed for upload in first.uploads + second.uploads)


def test_upload_annotations_resolve_even_when_other_hints_do_not(make_server: Any,
                                                                  make_client: Any) -> None:
    # with postponed annotations and a local import, get_type_hints fails and the binder sees
    # the annotation text: "UploadFile" still means an upload (pydantic cannot take the text)
    namespace: dict[str, Any] = {}
    exec(  # a module of its own, as an application written that way would be
        "from __future__ import annotations\n"
        "from genro_asgi import AsgiApplication, route\n"
        "def make():\n"
        "    from genro_asgi import UploadFile\n"
        "    class Local(AsgiApplication):\n"
        "        @route(methods=['POST'])\n"
        "        async def up(self, doc: UploadFile, more: list[UploadFile] | None = None):\n"
        "            return [doc.filename, len(more or [])]\n"
        "    return Local()\n", namespace)
    server = make_server()
    server.mount("/l", namespace["make"]())
    client = make_client(server)
    response = client.post("/l/up", files=[("doc", ("d.txt", b"d")), ("more", ("m", b"m"))])
    assert response.json() == ["d.txt", 1]
