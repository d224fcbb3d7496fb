"""Ed25519 keys as they appear in configuration: private key files and public key lines.

An agent signs with the OpenSSL its TLS already loaded (libcrypto, through ctypes): loading
cryptography's Rust extension as well costs ~7 MB of resident memory (measured), a tenth of the
agent's budget. Ed25519 signatures are deterministic, so the tests hold both implementations to
the same bytes. Where libcrypto cannot sign Ed25519, cryptography signs instead. Key generation
and verification (the watchdog) use cryptography.
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import logging
import os
import ssl
from typing import Any

from .document import Context, Invalid, os_reason, show

log = logging.getLogger(__name__)

# PKCS#8 DER of an Ed25519 private key: this prefix, then the 32-byte seed (RFC 8410).
_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_PEM_LABEL = "PRIVATE KEY"
_NID_ED25519 = 1087


class SigningKey:
    """An Ed25519 private key that signs: `sign(message)`, `public_bytes_raw()`, `private_bytes_raw()`."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self._seed = seed
        self._signer: _OpenSSLSigner | _CryptographySigner = _openssl_signer(seed) or _cryptography_signer(seed)

    def sign(self, message: bytes) -> bytes:
        try:
            return self._signer.sign(message)
        except OSError as exc:  # libcrypto stopped signing (a FIPS policy, say): cryptography takes over
            log.warning("event=ed25519-via-cryptography reason=%s", exc)
            self._signer = _cryptography_signer(self._seed)
            return self._signer.sign(message)

    def public_bytes_raw(self) -> bytes:
        return self._signer.public_bytes_raw()

    def private_bytes_raw(self) -> bytes:
        return self._seed


class _LibCrypto:
    """The few EVP calls Ed25519 signing needs, from the libcrypto the ssl module loaded."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(_loaded_libcrypto())
        p, size, c = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p
        self.new_key = _fn(lib.EVP_PKEY_new_raw_private_key, p, [ctypes.c_int, p, c, size])
        self.public = _fn(lib.EVP_PKEY_get_raw_public_key, ctypes.c_int, [p, c, ctypes.POINTER(size)])
        self.free_key = _fn(lib.EVP_PKEY_free, None, [p])
        self.new_ctx = _fn(lib.EVP_MD_CTX_new, p, [])
        self.free_ctx = _fn(lib.EVP_MD_CTX_free, None, [p])
        self.sign_init = _fn(lib.EVP_DigestSignInit, ctypes.c_int, [p, p, p, p, p])
        self.sign = _fn(lib.EVP_DigestSign, ctypes.c_int, [p, c, ctypes.POINTER(size), c, size])
        self.clear_errors = _fn(lib.ERR_clear_error, None, [])  # what failed must not haunt the TLS


def _fn(function: Any, restype: Any, argtypes: list[Any]) -> Any:
    function.restype, function.argtypes = restype, argtypes
    return function


def _loaded_libcrypto() -> str:
    """The path of the libcrypto mapped into this process (by the ssl module), else the system's."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rsplit(" ", 1)[-1].strip()
                if "/libcrypto" in path:
                    return path
    except OSError as exc:
        log.debug("event=proc-maps-unreadable error=%s", exc)
    found = ctypes.util.find_library("crypto")
    if not found:
        raise OSError("no libcrypto found")
    return found


_LIB: _LibCrypto | None = None


class _OpenSSLSigner:
    def __init__(self, lib: _LibCrypto, seed: bytes) -> None:
        self._lib = lib
        self._key = lib.new_key(_NID_ED25519, None, seed, len(seed))
        if not self._key:
            lib.clear_errors()
            raise OSError("libcrypto refused the Ed25519 key")
        out, length = ctypes.create_string_buffer(32), ctypes.c_size_t(32)
        if lib.public(self._key, out, ctypes.byref(length)) != 1 or length.value != 32:
            raise OSError("libcrypto could not derive the public key")
        self._public = out.raw

    def sign(self, message: bytes) -> bytes:
        lib = self._lib
        ctx = lib.new_ctx()
        if not ctx:
            raise MemoryError("EVP_MD_CTX_new failed")
        try:
            signature, length = ctypes.create_string_buffer(64), ctypes.c_size_t(64)
            if (lib.sign_init(ctx, None, None, None, self._key) != 1
                    or lib.sign(ctx, signature, ctypes.byref(length), message, len(message)) != 1
                    or length.value != 64):
                lib.clear_errors()
                raise OSError("libcrypto failed to sign")
            return signature.raw
        finally:
            lib.free_ctx(ctx)

    def public_bytes_raw(self) -> bytes:
        return self._public

    def __del__(self) -> None:
        if getattr(self, "_key", None):
            self._lib.free_key(self._key)


def _openssl_signer(seed: bytes) -> _OpenSSLSigner | None:
    global _LIB
    try:
        if _LIB is None:
            _LIB = _LibCrypto()
        signer = _OpenSSLSigner(_LIB, seed)
        signer.sign(b"slawatch")  # fails now rather than at the first batch
        return signer
    except (OSError, AttributeError) as exc:  # no libcrypto, or one too old for raw Ed25519 keys
        log.info("event=ed25519-via-cryptography reason=%s openssl=%r", exc, ssl.OPENSSL_VERSION)
        return None


class _CryptographySigner:
    def __init__(self, seed: bytes) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self._key = Ed25519PrivateKey.from_private_bytes(seed)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def public_bytes_raw(self) -> bytes:
        return self._key.public_key().public_bytes_raw()


def _cryptography_signer(seed: bytes) -> _CryptographySigner:
    return _CryptographySigner(seed)


def load_private_key(data: bytes) -> SigningKey:
    """Parse a PEM (PKCS#8) Ed25519 private key; raise ValueError otherwise."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("not a PEM file") from None
    begin, end = f"-----BEGIN {_PEM_LABEL}-----", f"-----END {_PEM_LABEL}-----"
    if begin not in text or end not in text:
        raise ValueError("not a PEM private key")
    body = text.split(begin, 1)[1].split(end, 1)[0]
    try:
        der = base64.b64decode("".join(body.split()), validate=True)
    except ValueError:
        raise ValueError("the PEM body is not base64") from None
    if len(der) == len(_PKCS8_PREFIX) + 32 and der.startswith(_PKCS8_PREFIX):
        return SigningKey(der[len(_PKCS8_PREFIX):])
    return SigningKey(_seed_via_cryptography(data))


def _seed_via_cryptography(data: bytes) -> bytes:
    """Other PKCS#8 layouts (with a public key attached, say): let cryptography read them."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 key")
    return key.private_bytes_raw()


def pem_private_key(seed: bytes) -> bytes:
    """The PEM (PKCS#8) file content of an Ed25519 seed."""
    encoded = base64.encodebytes(_PKCS8_PREFIX + seed).decode().strip()
    return f"-----BEGIN {_PEM_LABEL}-----\n{encoded}\n-----END {_PEM_LABEL}-----\n".encode()


def public_key_line(key: Any) -> str:
    """The `public_key = "ed25519:..."` value for watchdog.toml, of a SigningKey (or a
    cryptography Ed25519PrivateKey)."""
    raw = key.public_bytes_raw() if hasattr(key, "public_bytes_raw") else key.public_key().public_bytes_raw()
    return "ed25519:" + base64.b64encode(raw).decode()


def exposed_key(path: str) -> str | None:
    """A warning when the private key file may be read by other users than its owner: whoever reads
    it can sign readings as the agent. None when only its owner may."""
    try:
        mode = os.stat(path).st_mode & 0o777
    except OSError:
        return None  # reading it failed or will fail with its own message
    if mode & 0o077 == 0:
        return None
    return (f"{path} may be read by other users (mode {mode:04o}): whoever reads it can sign readings as this "
            f"agent; `chmod 600 {path}` (keygen writes it so)")


def private_key_file(value: Any, ctx: Context) -> str:
    """A readable file holding an Ed25519 private key."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"expected a file path, found {show(value)}")
    path = ctx.resolve_secret(value)
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
