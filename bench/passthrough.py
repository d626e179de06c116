"""The floor for a Python LLM proxy: forward the body, stream the answer back, nothing else.

Same stack as Switchyard's edge (Starlette on uvicorn with uvloop and httptools, aiohttp with a
pooled keep-alive connector to the upstream), minus everything a gateway does per call: no auth, no
rate limit, no routing, no parsing or re-encoding, no billing. The gap between this and Switchyard is
the cost of the gateway's own work; the gap between this and the upstream is the cost of one Python
hop.

Run: python bench/passthrough.py --upstream http://127.0.0.1:PORT [--port 0]; it prints
`PASSTHROUGH_PORT=<port>` when listening.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

# Hop-by-hop and length headers are the server's business on each side; everything else goes on.
_SKIP_RESPONSE_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive", "date", "server"})


def build_app(upstream: str, api_key: str) -> Starlette:
    state: dict[str, aiohttp.ClientSession] = {}
    url = upstream.rstrip("/") + "/v1/chat/completions"
    headers = {"authorization": f"Bearer {api_key}", "content-type": "application/json"}

    async def chat(request: Request) -> Response:
        body = await request.body()
        upstream_response = await state["session"].post(url, data=body, headers=headers)
        out_headers = {k: v for k, v in upstream_response.headers.items() if k.lower() not in _SKIP_RESPONSE_HEADERS}
        if upstream_response.content_type == "text/event-stream":
            async def relay():
                try:
                    # iter_any: whatever the socket delivered, without waiting to fill a buffer.
                    async for piece in upstream_response.content.iter_any():
                        yield piece
                finally:
                    upstream_response.release()

            return StreamingResponse(relay(), status_code=upstream_response.status, headers=out_headers)
        data = await upstream_response.read()
        upstream_response.release()
        return Response(data, status_code=upstream_response.status, headers=out_headers)

    async def lifespan(app):
        state["session"] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
            timeout=aiohttp.ClientTimeout(total=600),
        )
        yield
        await state["session"].close()

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])], lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="base URL of the upstream, without /v1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    app = build_app(args.upstream, os.environ.get("BENCH_UPSTREAM_KEY", "sk-bench"))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(2048)
    config = uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="on", access_log=False,
                            log_level="warning", server_header=False)
    server = uvicorn.Server(config)

    # Announce the port only once uvicorn accepts, so the runner never races the start-up.
    original_startup = server.startup

    async def startup(sockets=None):
        await original_startup(sockets=sockets)
        print(f"PASSTHROUGH_PORT={sock.getsockname()[1]}", flush=True)

    server.startup = startup
    server.run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())
