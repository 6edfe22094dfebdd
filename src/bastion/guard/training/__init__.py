"""Retrain the bundled ``ensemble`` layer, on bastion's training data and your own.

``train(Settings(out_dir=...))`` runs the recipe that made the bundled weights, in three
parts, each writing its files into ``out_dir``:

* ``ngram``: the n-gram head (``ensemble_ngram_head.npz`` and ``.json``; about a minute
  and a half on a 2-core CPU), :mod:`.ngram`;
* ``transformer``: the fine-tuned MiniLM layers (``transformer_head.npz`` and ``.json``;
  about 16 minutes on a 2-core CPU, with progress, resumable), :mod:`.transformer`;
* ``mix``: the weight of each member and the layer's threshold (``ensemble.json``),
  chosen on S-Labs val and benign-dev, :mod:`.mix`.

Then point the layer at them in a policy::

    - kind: ensemble
      transformer_weights: OUT/transformer_head.npz
      classifier_weights: OUT/ensemble_ngram_head.npz
      mix: ...          # from OUT/ensemble.json
      threshold: ...    # from OUT/ensemble.json

``extra`` adds labelled JSONL files (``{"text", "label"}`` per line), e.g. reviewers'
decisions from ``bastion review export``. The ``transformer`` part needs the
``guard-models`` extra (torch). Before any part runs, the ``extra`` rows are checked
(:mod:`.extra_checks`: outliers, trigger tokens, a dominating reviewer key); flagged rows
are dropped and listed unless ``keep_flagged``, and the report is written to
``out_dir/extra_checks.json`` and into each part's record.

    >>> from bastion.guard.training import Settings, train
    >>> records = train(Settings(out_dir="my-guard", extra=("decisions.jsonl",)))
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.errors import InputError
from bastion.extras import missing

#: the parts of a run, in the order they run.
PARTS = ("ngram", "transformer", "mix")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """One training run.

    Attributes:
        out_dir: folder for the weights and their records (created).
        parts: which of :data:`PARTS` to run (default all: the bundled layer's recipe).
        seed: seed for augmentation, initialisation and batch order.
        augment: add perturbed (and, for the transformer, padded) copies of the attacks.
        extra: labelled JSONL files added to the training data, after the checks of
            :mod:`.extra_checks`.
        keep_flagged: train on the ``extra`` rows the checks flag too (recorded).
        transformer_weights, ngram_weights: for ``mix`` when that member is not trained
            in this run: its ``.npz`` (``None``: the bundled one).
    """

    out_dir: str | Path
    parts: tuple[str, ...] = PARTS
    seed: int = 0
    augment: bool = True
    extra: tuple[str, ...] = ()
    keep_flagged: bool = False
    transformer_weights: str | None = None
    ngram_weights: str | None = None

    def check(self) -> None:
        """InputError for parts this package does not know, or none at all."""
        unknown = [p for p in self.parts if p not in PARTS]
        if unknown or not self.parts:
            raise InputError(f"parts must be some of {', '.join(PARTS)}, got "
                             f"{', '.join(self.parts) or 'none'}")


def train(settings: Settings, *, log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Run ``settings.parts`` in the order of :data:`PARTS`; returns each part's record
    (the JSON written beside its weights), by part name."""
    settings.check()
    try:  # each part's imports, first: a missing extra is said before hours of work
        from bastion.guard.training import mix as mix_part
        from bastion.guard.training import ngram as ngram_part

        if "transformer" in settings.parts:
            from bastion.guard.training import transformer as transformer_part
    except ModuleNotFoundError as exc:
        raise missing(exc, "bastion guard train", "guard-models") from exc
    out = Path(settings.out_dir)
    records: dict[str, Any] = {}
    transformer, ngram = settings.transformer_weights, settings.ngram_weights
    extra, checks = _checked_extra(settings, log)
    if "ngram" in settings.parts:
        records["ngram"] = ngram_part.train_ngram(out, seed=settings.seed,
                                                  augment=settings.augment,
                                                  extra=extra, log=log)
        ngram = str(out / ngram_part.HEAD_FILE)
        _note_checks(records["ngram"], out / ngram_part.META_FILE, checks)
    if "transformer" in settings.parts:
        recipe = transformer_part.Recipe(seed=settings.seed, augment=settings.augment,
                                         extra=extra)
        records["transformer"] = transformer_part.train_transformer(out, recipe, log=log)
        transformer = str(out / transformer_part.WEIGHTS_FILE)
        _note_checks(records["transformer"], out / transformer_part.META_FILE, checks)
    if "mix" in settings.parts:
        records["mix"] = mix_part.calibrate_mix(out, transformer_weights=transformer,
                                                classifier_weights=ngram, log=log)
    return records


def _checked_extra(settings: Settings, log: Callable[[str], Any]
                   ) -> tuple[tuple[str, ...], dict[str, Any] | None]:
    """The extra files to train on (checked copies) and the checks' report."""
    if not settings.extra or not {"ngram", "transformer"} & set(settings.parts):
        return settings.extra, None
    from bastion.guard.training.extra_checks import screen_extra

    paths, report = screen_extra(settings.extra, settings.out_dir,
                                 keep_flagged=settings.keep_flagged, log=log)
    return tuple(paths), report


def _note_checks(record: dict[str, Any], path: Path, report: dict[str, Any] | None) -> None:
    """Add the extra checks' summary to a part's record and its JSON file."""
    if report is None:
        return
    record["extra_checks"] = {
        "keep_flagged": report["keep_flagged"],
        "files": {name: {k: v for k, v in info.items() if k != "flagged"}
                  | {"n_flagged": len(info["flagged"])}
                  for name, info in report["files"].items()},
        "details": "extra_checks.json"}
    if report["keep_flagged"]:
        record["command"] = str(record.get("command", "")) + " --keep-flagged"
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


__all__ = ["PARTS", "Settings", "train"]
