"""TLS for the HTTP listeners (the API and the admission webhook): one setup for both."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from onepane.errors import ConfigError

HANDSHAKE_TIMEOUT_S = 30.0


def server_context(cert: Path, key: Path, what: str) -> ssl.SSLContext:
    """A TLS 1.2+ server context with ``cert`` and ``key``; ConfigError when they cannot
    be used."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"cannot use {cert} and {key} for the {what}: {exc}") from None
    return context


def wrap(listener: socket.socket, context: ssl.SSLContext) -> ssl.SSLSocket:
    """The listening socket, serving TLS; each connection's handshake is left to
    ``handshake`` in its own request thread, so a slow client never holds the accept loop."""
    return context.wrap_socket(listener, server_side=True, do_handshake_on_connect=False)


def handshake(connection: socket.socket) -> None:
    """Finish the TLS handshake of an accepted connection (nothing for plain TCP)."""
    if isinstance(connection, ssl.SSLSocket):
        connection.settimeout(HANDSHAKE_TIMEOUT_S)
        connection.do_handshake()


@dataclass(frozen=True)
class TlsFiles:
    """A certificate (chain) and its private key, PEM files."""

    cert: Path
    key: Path
