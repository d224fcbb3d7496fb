"""HTTPS for the watchdog's listener (`tls_cert_file`, `tls_key_file` in watchdog.toml)."""

from __future__ import annotations

import ssl

from slawatch.config import WatchdogConfig


def server_context(config: WatchdogConfig) -> ssl.SSLContext | None:
    """The listener's TLS context, or None for plain HTTP (both files are needed; config checks that)."""
    if not (config.tls_cert_file and config.tls_key_file):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # an encrypted key fails here instead of prompting on the daemon's terminal
    context.load_cert_chain(config.tls_cert_file, config.tls_key_file, password=lambda: b"")
    return context
