"""uvicorn's h11 protocol with ``TCP_NODELAY`` on every connection (``bastion serve``).

With ``--workers N`` uvicorn binds the listening socket itself, as
``socket.socket(family)``, whose ``proto`` is 0. asyncio sets ``TCP_NODELAY`` only on
sockets whose ``proto`` is ``IPPROTO_TCP``, so the workers' connections kept Nagle's
algorithm: h11 writes a response's head and body in two sends, and on a keep-alive
connection the body waited for the client's delayed ACK, about 40 ms per request on
Linux (measured with bench/service_load.py's server: 22 requests/s on one connection
with 2 workers against 900 with 1). Setting the option per connection fixes both cases.

It also bounds the time a client may take to send a request head (``header_timeout_s``,
set from ``limits.header_timeout_s`` as each worker starts): uvicorn's keep-alive timer
stops at the first byte of a request, so a client sending one header byte a second
(slowloris) would hold a connection as long as it liked. A head not complete in time
closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("bastion.service")


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
    """:class:`H11Protocol` that sets ``TCP_NODELAY`` as each connection opens and closes
    connections whose request head takes longer than ``header_timeout_s`` seconds."""

    header_timeout_s: float = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._arm_head_timer()  # a new request begins: its head is on the clock
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm_head_timer()  # the head is complete

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timeout)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.info("closing a connection whose request head took over %.1f s",
                     self.header_timeout_s)
            self.transport.close()
