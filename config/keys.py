"""Ed25519 keys as they appear in configuration: private key files and public key lines."""

from __future__ import annotations

import base64
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .document import Context, Invalid, os_reason, show


def load_private_key(data: bytes) -> Ed25519PrivateKey:
    """Parse a PEM (PKCS#8) Ed25519 private key; raise ValueError otherwise."""
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 key")
    return key


def public_key_line(key: Ed25519PrivateKey) -> str:
    """The `public_key = "ed25519:..."` value for watchdog.toml."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + base64.b64encode(raw).decode()


def private_key_file(value: Any, ctx: Context) -> str:
    """A readable file holding an Ed25519 private key."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"expected a file path, found {show(value)}")
    path = ctx.resolve(value)
    try:
        data = path.read_bytes()
    except (OSError, ValueError) as exc:
        raise Invalid(
            f"cannot read {show(str(path))}: {os_reason(exc)}; "
            "create it with `slawatch-agent keygen`"
        ) from None
    try:
        load_private_key(data)
    except (ValueError, TypeError):
        raise Invalid(
            f'"{path}" holds no Ed25519 private key in PEM form; create one with `slawatch-agent keygen`'
        ) from None
    return str(path)
