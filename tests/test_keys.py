"""Agent keys: the libcrypto signer gives cryptography's bytes, key files of every common origin load,
and the running agent never maps cryptography's extension."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from slawatch.config.keys import SigningKey, _cryptography_signer, load_private_key, pem_private_key, public_key_line


@settings(max_examples=200)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=2000))
def test_libcrypto_signatures_are_cryptographys(seed: bytes, message: bytes) -> None:
    ours = SigningKey(seed)
    theirs = Ed25519PrivateKey.from_private_bytes(seed)
    assert type(ours._signer).__name__ == "_OpenSSLSigner"  # this machine's OpenSSL signs itself
    assert ours.sign(message) == theirs.sign(message)
    assert ours.public_bytes_raw() == theirs.public_key().public_bytes_raw()
    theirs.public_key().verify(ours.sign(message), message)  # raises if it does not verify
    fallback = _cryptography_signer(seed)
    assert fallback.sign(message) == ours.sign(message)


def test_key_files_from_cryptography_openssl_and_ours_load(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    assert load_private_key(pem).private_bytes_raw() == key.private_bytes_raw()
    assert pem_private_key(key.private_bytes_raw()) == pem
    generated = tmp_path / "openssl.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(generated)], check=True)
    loaded = load_private_key(generated.read_bytes())
    derived = subprocess.run(["openssl", "pkey", "-in", str(generated), "-pubout", "-outform", "DER"],
                             check=True, capture_output=True).stdout
    assert loaded.public_bytes_raw() == derived[-32:]
    assert public_key_line(loaded) == public_key_line(
        Ed25519PrivateKey.from_private_bytes(loaded.private_bytes_raw()))


@pytest.mark.parametrize("data", [
    b"", b"\xff\xfe", b"-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n",
    b"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n",
])
def test_what_is_no_private_key_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        load_private_key(data)


def test_an_rsa_key_is_refused(tmp_path: Path) -> None:
    rsa = tmp_path / "rsa.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out",
                    str(rsa)], check=True, capture_output=True)
    with pytest.raises(ValueError, match="not an Ed25519 key"):
        load_private_key(rsa.read_bytes())
