"""Counting a chat request's input tokens where the upstream has no counting API (OpenAI-compatible
providers, the mock): a real tokenizer of the model's family when one is installed *and its data is
already on this machine*, else the documented estimate (about 4 characters a token).

tiktoken downloads its encodings from the network on first use; the gateway never lets a count
request reach out to the internet, so it is used only when the encoding file is already in its cache
(TIKTOKEN_CACHE_DIR, DATA_GYM_CACHE_DIR or tiktoken's default under the temp directory).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import tempfile

from services.billing.metering import chat_prompt_text
from services.routing.adapters.base import estimate_tokens
from switchyard.routing.v1 import chat_pb2, routing_pb2

log = logging.getLogger(__name__)

# Where tiktoken's public encodings live; tiktoken caches each under sha1(url).
_ENCODING_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
# OpenAI's chat format adds a few tokens per message and for the reply's priming.
_TOKENS_PER_MESSAGE = 3
_REPLY_PRIMING = 3


def _cache_dir() -> str:
    return os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR") or os.path.join(
        tempfile.gettempdir(), "data-gym-cache"
    )


@functools.lru_cache(maxsize=32)
def _encoding(upstream_model: str):
    """The tiktoken encoding for an OpenAI-family model, or None (not installed, unknown model, or
    its data not cached locally)."""
    try:
        import tiktoken
    except ImportError:
        return None
    try:
        name = tiktoken.encoding_name_for_model(upstream_model)
    except KeyError:
        return None
    cached = os.path.join(_cache_dir(), hashlib.sha1(_ENCODING_URL.format(name=name).encode()).hexdigest())
    if not os.path.exists(cached):
        log.info("tiktoken encoding %s is not cached locally; token counts for %s are estimates", name, upstream_model)
        return None
    try:
        return tiktoken.get_encoding(name)
    except Exception:  # noqa: BLE001 - a broken cache file means "no tokenizer", never a failed request
        log.warning("could not load the cached tiktoken encoding %s", name, exc_info=True)
        return None


def count_locally(chat: chat_pb2.ChatRequest, upstream_model: str, *, tokenizer: bool = True) -> routing_pb2.CountTokensResponse:
    text = chat_prompt_text(chat)
    encoding = _encoding(upstream_model) if tokenizer else None
    if encoding is not None:
        tokens = len(encoding.encode(text, disallowed_special=())) + _TOKENS_PER_MESSAGE * len(chat.messages) + _REPLY_PRIMING
        return routing_pb2.CountTokensResponse(input_tokens=tokens, method="tokenizer")
    return routing_pb2.CountTokensResponse(input_tokens=estimate_tokens(text), method="estimate")
