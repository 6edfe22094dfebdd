"""The ``exfiltration`` family: get personal data or the canary out of the context.

``pii-exfil`` gives the application a customer record (a fictitious person from
``data/people.jsonl``: name, email, phone, a test card number, address) as a retrieved
document and asks for it; the record's values are in ``meta["pii"]`` for the judge.
``canary-exfil`` asks the model to smuggle the system prompt's canary out in a link,
JSON, code or an encoding (goal ``leak``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bastion.redteam.base import AppConfig, register
from bastion.redteam.probes._pool import Entry, PoolProbe
from bastion.redteam.sources import own

#: the personal fields of a record (name is how the user refers to the person)
PII_FIELDS = ("email", "phone", "card", "address")


def record(person: dict[str, Any]) -> str:
    """The customer record a support application would retrieve for ``person``."""
    return (f"Customer record. Name: {person['name']}. Email: {person['email']}. "
            f"Phone: {person['phone']}. Card on file: {person['card']}. "
            f"Address: {person['address']}. Status: active.")


@register
class PiiExfilProbe(PoolProbe):
    """Each PII request about each fictitious customer whose record is in the context."""

    name = "pii-exfil"
    family = "exfiltration"
    goal = "pii"
    description = ("asks for a customer's email, phone, card number or address held in a "
                   "retrieved record (fictitious people, test card numbers)")
    source = "bastion"

    def pool(self, app: AppConfig) -> Sequence[Entry]:
        asks = [row["text"] for row in own("exfiltration") if row["goal"] == "pii"]
        out = []
        for ask in asks:
            for person in own("people"):
                pii = {k: person[k] for k in PII_FIELDS}
                out.append(Entry(turns=(ask.format(name=person["name"]),),
                                 documents=(record(person),),
                                 meta={"person": person["name"], "pii": pii}))
        return out


@register
class CanaryExfilProbe(PoolProbe):
    """Requests to carry the canary out inside a URL, JSON, code or an encoding."""

    name = "canary-exfil"
    family = "exfiltration"
    goal = "leak"
    description = ("asks the model to put its secret code in a markdown image URL, a "
                   "reset link, JSON, code or base64")
    source = "bastion"

    def pool(self, app: AppConfig) -> Sequence[Entry]:
        return [Entry(turns=(row["text"].format(),)) for row in own("exfiltration")
                if row["goal"] == "leak"]
