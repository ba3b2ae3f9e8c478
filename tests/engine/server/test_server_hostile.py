"""The server against hostile clients: repeated list fields, foreign Host, cross-site posts, huge ids, slow bytes.

The in-process tests use the TestClient; the slow-byte tests run a real uvicorn (with xmodal's header-deadline
protocol) on 127.0.0.1 and attack it with raw sockets, timing ``/health`` meanwhile. Every socket has a
timeout, so a server that fails to cut a client fails the test instead of hanging it.
"""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from engine.server.app import ServerConfig, create_app
from engine.server.http import GuardedProtocol
from engine.server.request import MAX_FORM_FIELDS, MAX_JSON_BYTES, MAX_LIST

TEST_HOST = ("testserver",)
FAST_S = 2.0  # an attack is answered within this (generous: the test machine is shared)
HEALTH_MAX_S = 2.0  # the slowest /health answer while an attack runs
HEADER_S, BODY_S = 1.0, 1.0  # the live server's deadlines, short for the test


@pytest.fixture(scope="module")
def store(tiny_store) -> tuple[Path, list[Path]]:
    return tiny_store.store, list(tiny_store.files)  # the session's store: these tests only read it


@pytest.fixture(scope="module")
def client(store):
    config = ServerConfig(max_upload_mb=1, allowed_hosts=TEST_HOST, cors_origins=("http://localhost:3000",))
    with TestClient(create_app(store[0], config)) as c:
        yield c


def _searches(client: TestClient) -> int:
    return client.get("/stats").json()["server"]["searches"]


def _timed(call, *args, **kwargs):
    start = time.perf_counter()
    out = call(*args, **kwargs)
    return out, time.perf_counter() - start


# ---- repeated and oversized list fields ---------------------------------------------------------------------

def test_repeated_targets_run_one_search_per_modality(client):
    one = client.post("/search", json={"text": "a red square", "targets": ["image"], "k": 5}).json()["results"]
    before = _searches(client)
    repeated = client.post("/search", json={"text": "a red square", "targets": ["image"] * MAX_LIST, "k": 5})
    assert repeated.status_code == 200
    assert repeated.json()["query"]["targets"] == ["image"]
    assert [r["item_id"] for r in repeated.json()["results"]] == [r["item_id"] for r in one]
    assert _searches(client) - before == 1


def test_ten_thousand_targets_are_refused_fast(client):
    before = _searches(client)
    response, took = _timed(client.post, "/search", json={"text": "dogs", "targets": ["image"] * 10_000})
    assert response.status_code == 422 and "targets" in response.json()["error"]["message"]
    assert took < FAST_S and _searches(client) == before
    assert len(response.content) < 2000  # the refusal does not echo the input


@pytest.mark.parametrize("filters, field", [
    ({"modalities": ["audio"] * (MAX_LIST + 1)}, "filters.modalities"),
    ({"metadata": {f"k{i}": i for i in range(33)}}, "filters.metadata"),
    ({"metadata": {"k": "x" * 1001}}, "filters.metadata"),
    ({"uri_glob": "*" * 1001}, "filters.uri_glob"),
])
def test_oversized_filters_are_422(client, filters, field):
    response = client.post("/search", json={"text": "dogs", "filters": filters})
    assert response.status_code == 422 and field in response.json()["error"]["message"]


def test_repeated_filter_modalities_are_deduped(client):
    response = client.post("/search", json={"text": "a tone", "k": 5, "filters": {"modalities": ["audio"] * MAX_LIST}})
    assert response.status_code == 200
    assert {r["modality"] for r in response.json()["results"]} == {"audio"}


def test_non_finite_numbers_are_refused(client):
    for body in (b'{"text": "dogs", "text_weight": NaN}', b'{"text": "dogs", "filters": {"mtime_after": Infinity}}',
                 b'{"text": "dogs", "text_weight": 1e300}'):
        response = client.post("/search", content=body, headers={"content-type": "application/json"})
        assert response.status_code in (400, 422), body


def test_form_targets_repeated_as_fields_and_in_one_field(client):
    before = _searches(client)
    fields = [("text", "a red square"), ("k", "3")] + [("targets", "image")] * 10
    response = client.post("/search", content=_multipart(fields),
                           headers={"content-type": "multipart/form-data; boundary=xx"})
    assert response.status_code == 200 and response.json()["query"]["targets"] == ["image"]
    assert _searches(client) - before == 1
    long_field = _multipart([("text", "dogs"), ("targets", ",".join(["image"] * 5000))])
    response, took = _timed(client.post, "/search", content=long_field,
                            headers={"content-type": "multipart/form-data; boundary=xx"})
    assert response.status_code == 422 and took < FAST_S and _searches(client) - before == 1


def _multipart(fields: list[tuple[str, str]], boundary: str = "xx") -> bytes:
    out = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                   for k, v in fields)
    return out + f"--{boundary}--\r\n".encode()


@pytest.mark.parametrize("fields, status", [
    ([("targets", "image")] * (MAX_FORM_FIELDS + 1) + [("text", "dogs")], 400),  # too many fields
    ([("text", "dogs"), ("filters", "x" * (100 << 10))], 400),  # one field over the part size
    ([("text", "dogs"), ("k", "3"), ("k", "4")], 400),  # a scalar field twice
    ([("text", "dogs"), ("filters", "[" * 20_000 + "]" * 20_000)], 400),  # deep JSON in a field
    ([("text", "dogs"), ("filters", '{"metadata": {"k": 1e999}}')], 422),
])
def test_hostile_forms_are_refused(client, fields, status):
    response, took = _timed(client.post, "/search", content=_multipart(fields),
                            headers={"content-type": "multipart/form-data; boundary=xx"})
    assert response.status_code == status, response.text
    assert took < FAST_S and "Traceback" not in response.text


def test_form_with_thousands_of_fields_in_a_big_body_is_cut_early(client):
    body = _multipart([("targets", "image")] * 200_000)  # about 17 MB, under no declared limit but the upload cap
    assert len(body) > 10 << 20
    response, took = _timed(client.post, "/search", content=iter([body[i:i + 65536]
                                                                  for i in range(0, len(body), 65536)]),
                            headers={"content-type": "multipart/form-data; boundary=xx"})
    assert response.status_code in (400, 413) and took < FAST_S


def test_json_body_over_its_cap_is_413(client):
    big = json.dumps({"text": "dogs", "filters": {"uri_glob": "x" * MAX_JSON_BYTES}}).encode()
    declared = client.post("/search", content=big, headers={"content-type": "application/json"})
    assert declared.status_code == 413 and declared.headers["connection"] == "close"
    chunks = iter([big[i:i + 8192] for i in range(0, len(big), 8192)])  # chunked: no declared length
    streamed = client.post("/search", content=chunks, headers={"content-type": "application/json"})
    assert streamed.status_code == 413


# ---- Host and Origin ------------------------------------------------------------------------------------

ROUTES = [("GET", "/health"), ("GET", "/stats"), ("GET", "/items/1"), ("GET", "/media/1"), ("GET", "/"),
          ("GET", "/static/app.js"), ("GET", "/openapi.json"), ("POST", "/search")]


@pytest.mark.parametrize("method, path", ROUTES)
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.evil",
                                  "", "a b", "evil.example:notaport"])
def test_foreign_host_is_refused_on_every_route(client, method, path, host):
    before = _searches(client)
    response = client.request(method, path, headers={"host": host}, json={"text": "dogs"} if method == "POST" else None)
    assert response.status_code == 421, (host, path, response.status_code)
    assert "Host" in response.json()["error"]["message"]
    assert _searches(client) == before


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "LOCALHOST", "localhost.", "[::1]:8000",
                                  "127.0.0.2", "testserver:443"])
def test_own_and_loopback_hosts_are_answered(client, host):
    assert client.get("/health", headers={"host": host}).status_code == 200


def test_allowed_host_option(store):
    config = ServerConfig(allowed_hosts=("box.lan", "proxy.example:8443"))
    with TestClient(create_app(store[0], config), base_url="http://box.lan:8000") as c:
        assert c.get("/health").status_code == 200
        assert c.get("/health", headers={"host": "proxy.example:8443"}).status_code == 200
        assert c.get("/health", headers={"host": "proxy.example:9000"}).status_code == 421
        assert c.get("/health", headers={"host": "testserver"}).status_code == 421
    with TestClient(create_app(store[0], ServerConfig(allowed_hosts=("*",)))) as c:
        assert c.get("/health", headers={"host": "anything.example"}).status_code == 200


@pytest.mark.parametrize("origin, status", [
    ("http://evil.example", 403), ("null", 403), ("http://testserver:8080", 403), ("https://testserver", 403),
    ("http://testserver", 200), ("http://localhost:3000", 200),
])
def test_cross_site_posts_are_refused(client, origin, status):
    before = _searches(client)
    form = client.post("/search", content=_multipart([("text", "dogs"), ("targets", "image")]),
                       headers={"origin": origin, "content-type": "multipart/form-data; boundary=xx"})
    assert form.status_code == status, form.text
    assert _searches(client) - before == (1 if status == 200 else 0)
    if status == 403:
        assert "Origin" in form.json()["error"]["message"]
        assert client.get("/health", headers={"origin": origin}).status_code == 200  # reads stay CORS's business


# ---- ids --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [str(1 << 63), str((1 << 64) + 5), "9" * 40, "-1", "0", str(-(1 << 63) - 1), "1e3",
                                 str((1 << 63) - 1)])
def test_huge_and_negative_ids_are_404_or_422(client, raw):
    for path in (f"/items/{raw}", f"/media/{raw}", f"/media/{raw}?thumb=1"):
        response = client.get(path)
        assert response.status_code in (404, 422), (path, response.status_code)
        assert response.json()["error"]


# ---- a live server, raw sockets ---------------------------------------------------------------------------

class FastHeaders(GuardedProtocol):  # type: ignore[misc,valid-type]
    header_timeout_s = HEADER_S


@pytest.fixture(scope="module")
def live(store):
    import uvicorn

    config = ServerConfig(max_upload_mb=1, body_timeout_s=BODY_S)
    server = uvicorn.Server(uvicorn.Config(create_app(store[0], config), host="127.0.0.1", port=0,
                                          log_level="warning", http=FastHeaders, timeout_keep_alive=5))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    port = server.servers[0].sockets[0].getsockname()[1]
    yield "127.0.0.1", port
    server.should_exit = True
    thread.join(30)


class HealthProbe:
    """A thread that asks ``/health`` in a loop and keeps each answer's latency (failures count as infinite)."""

    def __init__(self, port: int) -> None:
        self.port, self.latencies, self.stop = port, [], threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10) as c:
            while not self.stop.is_set():
                start = time.perf_counter()
                try:
                    ok = c.get("/health").status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.latencies.append(time.perf_counter() - start if ok else float("inf"))
                time.sleep(0.02)

    def __enter__(self) -> HealthProbe:  # noqa: PYI034
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(15)

    def check(self, what: str) -> None:
        assert len(self.latencies) >= 3, f"{what}: /health was asked only {len(self.latencies)} times"
        worst = max(self.latencies)
        print(f"\n{what}: /health answered {len(self.latencies)} times, p50 "
              f"{1000 * statistics.median(self.latencies):.1f} ms, max {1000 * worst:.1f} ms")
        assert worst < HEALTH_MAX_S, f"{what}: /health took {worst:.2f} s"


def _connect(port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (the socket's timeout bounds each wait)."""
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return out
        if not chunk:
            return out
        out += chunk


def _trickle(sock: socket.socket, pieces: list[bytes], gap: float, stop: float) -> bool:
    """Send the pieces ``gap`` s apart until sent or ``stop`` s passed; False when the server closed first."""
    start = time.monotonic()
    for piece in pieces:
        if time.monotonic() - start > stop:
            break
        try:
            sock.sendall(piece)
        except OSError:  # closed by the server (broken pipe, reset)
            return False
        time.sleep(gap)
    return True


def _attack(port: int, n: int, pieces: list[bytes], gap: float) -> tuple[list[bytes], float]:
    """``n`` connections each trickling ``pieces`` ``gap`` s apart; what each got back and when the last was cut."""
    socks = [_connect(port) for _ in range(n)]
    start = time.monotonic()
    threads = [threading.Thread(target=_trickle, args=(s, pieces, gap, 10), daemon=True) for s in socks]
    for t in threads:
        t.start()
    replies = [_read_until_closed(s) for s in socks]
    cut_after = time.monotonic() - start
    for t in threads:
        t.join(15)
    for s in socks:
        s.close()
    return replies, cut_after


def test_slow_headers_are_cut_while_health_answers(live):
    _, port = live
    with HealthProbe(port) as probe:
        replies, cut_after = _attack(port, 20, [b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"]
                                     + [b"X-Slow: 1\r\n"] * 100, 0.1)
    assert all(r.startswith(b"HTTP/1.1 408") for r in replies), replies[0][:100]
    assert cut_after < HEADER_S + 3.0, f"slow headers held for {cut_after:.1f} s"
    probe.check("20 slowloris header connections")


def test_idle_and_oversized_header_connections_are_closed(live):
    _, port = live
    idle = _connect(port)
    start = time.monotonic()
    assert _read_until_closed(idle).startswith(b"HTTP/1.1 408")
    assert time.monotonic() - start < HEADER_S + 3.0
    big = _connect(port)
    _trickle(big, [b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"] + [b"X-Big: " + b"a" * 8000 + b"\r\n"] * 20, 0, 10)
    assert _read_until_closed(big)[:12] in (b"HTTP/1.1 431", b"HTTP/1.1 400")  # httptools or h11 may refuse first


def test_slow_body_is_408_while_health_answers(live):
    _, port = live
    head = (b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2000\r\n\r\n{\"text\": \"")
    with HealthProbe(port) as probe:
        replies, cut_after = _attack(port, 10, [head] + [b"a"] * 200, 0.1)
    assert all(r.startswith(b"HTTP/1.1 408") for r in replies), replies[0][:200]
    assert all(b"did not arrive" in r for r in replies)
    assert cut_after < BODY_S + 3.0, f"slow bodies held for {cut_after:.1f} s"
    probe.check("10 slow-body connections")


def test_declared_huge_body_is_refused_before_it_is_sent(live):
    _, port = live
    sock = _connect(port, timeout=5)
    sock.sendall(b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=xx\r\n"
                 b"Content-Length: 104857600\r\n\r\n")  # 100 MB announced, none of it sent
    reply = _read_until_closed(sock)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 413") and b"connection: close" in reply.lower()


def test_flood_of_repeated_targets_leaves_health_responsive(live):
    _, port = live
    body = json.dumps({"text": "dogs", "targets": ["image"] * 10_000}).encode()  # the 90 KB attack
    multipart = _multipart([("text", "dogs"), ("targets", ",".join(["image"] * 10_000))])
    statuses = []
    with HealthProbe(port) as probe, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
        start = time.monotonic()
        for _ in range(20):
            statuses.append(c.post("/search", content=body, headers={"content-type": "application/json"}).status_code)
            statuses.append(c.post("/search", content=multipart,
                                   headers={"content-type": "multipart/form-data; boundary=xx"}).status_code)
        took = time.monotonic() - start
        time.sleep(0.3)
    assert set(statuses) <= {400, 422}, statuses
    assert took < 20 * FAST_S
    probe.check(f"40 repeated-targets searches ({took:.2f} s)")


def test_foreign_host_on_the_live_server(live):
    _, port = live
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
        assert c.get("/health").status_code == 200
        for path in ("/health", "/stats", "/items/1", "/media/1", "/"):
            assert c.get(path, headers={"host": f"rebound.example:{port}"}).status_code == 421
        assert c.post("/search", json={"text": "dogs"}, headers={"origin": "http://evil.example"}).status_code == 403
        assert c.post("/search", json={"text": "dogs"},
                      headers={"origin": f"http://127.0.0.1:{port}"}).status_code == 200


def test_serve_command_wires_the_guards(store, monkeypatch):
    import uvicorn

    from engine.cli import build_parser, preflight
    from engine.server.http import PROTOCOL

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(app=app, **kwargs))
    monkeypatch.setattr(preflight, "check_port", lambda host, port: None)  # box.lan resolves nowhere here
    args = build_parser().parse_args(["serve", "--store", str(store[0]), "--host", "box.lan", "--allow-host",
                                      "proxy.example", "--body-timeout", "7"])
    assert args.func(args) == 0
    assert seen["http"] == PROTOCOL and seen["timeout_keep_alive"] > 0
    with TestClient(seen["app"], base_url="http://proxy.example") as c:
        assert c.get("/health").status_code == 200
        assert c.get("/health", headers={"host": "box.lan:8000"}).status_code == 200
        assert c.get("/health", headers={"host": "evil.example"}).status_code == 421
    for bad in ("0", "-1", "nan"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["serve", "--body-timeout", bad])
