"""The edge's HTTP/1.1 as a client sees it on one raw connection: keep-alive across whole and
streamed (chunked) answers, HEAD, pipelined requests answered in order, and a whole answer
arriving in one piece (the edge writes a response's head together with its body)."""

from __future__ import annotations

import socket

import orjson
import pytest

CONFIG = {
    "providers": {"mock": {"kind": "mock"}},
    "models": {"mock-chat": {"deployments": [{"provider": "mock", "model": "mock"}]}},
}


class Connection:
    def __init__(self, url: str) -> None:
        host, port = url.rsplit("/", 1)[1].split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, *requests: bytes) -> None:
        self.sock.sendall(b"".join(requests))

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        assert data, "the edge closed the connection"
        self.buffer += data

    def _take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        taken, self.buffer = self.buffer[:size], self.buffer[size:]
        return taken

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def response(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower().decode()] = value.strip().decode()
        if head_only:
            return status, headers, b""
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int(self._line(), 16):
                body += self._take(size)
                assert self._take(2) == b"\r\n"
            assert self._take(2) == b"\r\n"
            return status, headers, body
        return status, headers, self._take(int(headers["content-length"]))


def request(method: str, path: str, key: str = "", body: dict | None = None, request_id: str = "") -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: edge"]
    if key:
        head.append(f"Authorization: Bearer {key}")
    if request_id:
        head.append(f"X-Request-Id: {request_id}")
    payload = orjson.dumps(body) if body is not None else b""
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


@pytest.fixture
def gw(make_gateway):
    return make_gateway(**CONFIG)


@pytest.fixture
def conn(gw):
    connection = Connection(gw.url)
    yield connection
    connection.close()


def chat(stream: bool) -> dict:
    return {"model": "mock-chat", "messages": [{"role": "user", "content": "hello"}], "stream": stream}


def test_one_connection_carries_whole_streamed_and_head_answers(gw, conn):
    conn.send(request("GET", "/healthz"))
    status, headers, body = conn.response()
    assert status == 200 and orjson.loads(body) == {"status": "ok"} and headers["content-type"] == "application/json"

    conn.send(request("HEAD", "/healthz"))
    status, headers, body = conn.response(head_only=True)
    assert status == 200 and headers["content-length"] == str(len(b'{"status":"ok"}'))

    conn.send(request("POST", "/v1/chat/completions", gw.admin_key, chat(stream=True)))
    status, headers, body = conn.response()
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert float(headers["x-switchyard-overhead-ms"]) >= 0 and headers["x-request-id"].startswith("req_")
    events = [line[6:] for line in body.split(b"\n") if line.startswith(b"data: ")]
    assert events[-1] == b"[DONE]" and len(events) > 2
    assert "".join(c["delta"].get("content") or "" for e in events[:-1] for c in orjson.loads(e)["choices"]).startswith("Mock reply to:")

    conn.send(request("POST", "/v1/chat/completions", gw.admin_key, chat(stream=False)))
    status, headers, body = conn.response()
    assert status == 200 and orjson.loads(body)["choices"][0]["message"]["content"].startswith("Mock reply to: hello")
    assert float(headers["x-switchyard-overhead-ms"]) >= 0

    conn.send(request("GET", "/v1/nowhere", gw.admin_key))
    status, headers, body = conn.response()
    assert status == 404 and "error" in orjson.loads(body)


def test_pipelined_requests_are_answered_in_order(gw, conn):
    conn.send(*(request("GET", "/v1/models", gw.admin_key, request_id=f"req_pipelined{i}") for i in range(3)),
              request("POST", "/v1/chat/completions", gw.admin_key, chat(stream=False), request_id="req_pipelined3"))
    answers = [conn.response() for _ in range(4)]
    assert [headers["x-request-id"] for _, headers, _ in answers] == [f"req_pipelined{i}" for i in range(4)]
    assert all(status == 200 for status, _, _ in answers)
    assert [m["id"] for m in orjson.loads(answers[0][2])["data"]] == ["mock-chat"]


def test_a_whole_answer_arrives_in_one_piece(gw, conn):
    for _ in range(5):
        conn.send(request("GET", "/v1/models", gw.admin_key))
        first = conn.sock.recv(65536)  # what the first read finds: the head and the body together
        head, _, body = first.partition(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
        assert len(body) == length
