"""Password hashing with scrypt (stdlib `hashlib.scrypt`): memory-hard, salted, parameters stored with the hash.

Passwords, unlike API keys, are chosen by people and guessable, so they get a slow salted hash;
session and invite tokens are random and are stored as plain SHA-256 digests like keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# n=2**14, r=8: 16 MiB and ~50 ms per hash here; OWASP's minimum for scrypt.
_N, _R, _P = 1 << 14, 8, 1
_MAXMEM = 64 * 1024 * 1024
MIN_LENGTH = 10
MAX_LENGTH = 1024


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    derived = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(derived)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        derived = hashlib.scrypt(
            password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), maxmem=_MAXMEM, dklen=32,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(derived, _unb64(expected))


# Compared against when the email is unknown, so a wrong address costs the same time as a wrong password.
DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def check_new_password(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_LENGTH:
        return f"password must have at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"password must have at most {MAX_LENGTH} characters."
    return None
