"""uvicorn's h11 protocol with ``TCP_NODELAY`` on every connection (``bastion serve``).

With ``--workers N`` uvicorn binds the listening socket itself, as
``socket.socket(family)``, whose ``proto`` is 0. asyncio sets ``TCP_NODELAY`` only on
sockets whose ``proto`` is ``IPPROTO_TCP``, so the workers' connections kept Nagle's
algorithm: h11 writes a response's head and body in two sends, and on a keep-alive
connection the body waited for the client's delayed ACK, about 40 ms per request on
Linux (measured with bench/service_load.py's server: 22 requests/s on one connection
with 2 workers against 900 with 1). Setting the option per connection fixes both cases.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol


def set_nodelay(transport: asyncio.BaseTransport) -> bool:
    """Turn Nagle's algorithm off on ``transport``'s TCP socket; whether it was set."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False  # a Unix socket, or a transport without one: nothing to do
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return True
    return False


class NoDelayH11Protocol(H11Protocol):
    """:class:`H11Protocol` that sets ``TCP_NODELAY`` as each connection opens."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        super().connection_made(transport)
