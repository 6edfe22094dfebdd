"""The robustness card: ``card.json`` (versioned, JSON Schema) and ``card.html``.

Example::

    from bastion.report import CardEntry, write_card

    entry = CardEntry(
        model={"name": "lenet", "kind": "file", "description": "", "digest": "ab12"},
        data={"name": "mnist", "split": "test", "n": 1000, "source": "bastion-data-mnist"},
        evaluation=result.to_dict(),  # a bastion.evaluation.Evaluation
    )
    json_path, html_path = write_card(
        Path("out"), [entry],
        run={"run_id": "3f2a9c", "seed": 0, "versions": bastion.common.records.versions(),
             "command": "bastion evaluate ..."},
    )

The fields are documented in docs/card.md.
"""

from __future__ import annotations

from bastion.report.card import (
    CARD_SCHEMA_VERSION,
    CardEntry,
    build_card,
    validate_card,
    write_card,
    write_entry_card,
    write_privacy_card,
    write_redteam_card,
)

__all__ = ["CARD_SCHEMA_VERSION", "CardEntry", "build_card", "validate_card", "write_card",
           "write_entry_card", "write_privacy_card", "write_redteam_card"]
