"""What every router of the service needs from a request: the service instance, the
caller's key (by role) and the session id. The routers and the app import this module;
it imports none of them, so the service's modules form a DAG:
``deps`` <- ``proxy``, ``review``, ``web`` <- ``app``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from bastion.service.state import DEFAULT_SESSION, SESSION_HEADER, Gate, Service
from bastion.service.storage import Principal


def service_of(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


def gate_of(request: Request) -> Gate:
    """The app's keys, limits and store: a guard :class:`Service` or a model endpoint's."""
    gate: Gate = request.app.state.service
    return gate


def client(request: Request) -> Principal:
    """Dependency: any live key (sync, so FastAPI runs the key lookup in its pool)."""
    return gate_of(request).principal(request, "client")


def reviewer(request: Request) -> Principal:
    return gate_of(request).principal(request, "reviewer")


def admin(request: Request) -> Principal:
    return gate_of(request).principal(request, "admin")


ClientKey = Annotated[Principal, Depends(client)]
ReviewerKey = Annotated[Principal, Depends(reviewer)]
AdminKey = Annotated[Principal, Depends(admin)]


def session_of(request: Request, given: str | None) -> str:
    """The session id: the body's, else the ``X-Bastion-Session`` header, else the key's."""
    return given or request.headers.get(SESSION_HEADER) or DEFAULT_SESSION
