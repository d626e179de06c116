"""API key secrets: `tk_live_` + 32 random characters, stored only as a SHA-256 digest.

A plain (unsalted) digest is enough here: the secret carries ~190 bits of randomness, so there is
nothing to brute-force, and it lets a key be found by an index lookup on its digest.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

PREFIX = "tk_live_"
_ALPHABET = string.ascii_letters + string.digits
_RANDOM_LENGTH = 32
SECRET_LENGTH = len(PREFIX) + _RANDOM_LENGTH
_ALLOWED = frozenset(_ALPHABET)


def new_secret() -> str:
    return PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_LENGTH))


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def well_formed(secret: str) -> bool:
    """Cheap shape check, so garbage never reaches the database."""
    return (
        len(secret) == SECRET_LENGTH
        and secret.startswith(PREFIX)
        and _ALLOWED.issuperset(secret[len(PREFIX):])
    )


def matches(secret: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(secret), stored_digest)


def display_prefix(secret: str) -> str:
    return secret[: len(PREFIX) + 4]


def new_id(kind: str) -> str:
    return f"{kind}_{secrets.token_hex(8)}"
