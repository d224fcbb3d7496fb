"""Password hashes for watchdog users: scrypt, stored as `scrypt:N:r:p:salt:hash` (base64)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

N, R, P = 2**14, 8, 1


def hash_password(password: str) -> str:
    """A new salted scrypt hash of a password."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=32)
    return f"scrypt:{N}:{R}:{P}:{base64.b64encode(salt).decode()}:{base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether a password matches a stored hash (constant-time comparison)."""
    _, n, r, p, salt, digest = stored.split(":")
    expected = base64.b64decode(digest)
    actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r),
                            p=int(p), dklen=len(expected), maxmem=256 * 1024 * 1024)
    return hmac.compare_digest(actual, expected)
