"""bastion's labelled grounding set: contexts, answers, and a label for every sentence.

``bastion/guard/data/grounding.jsonl`` holds one answer per line, written for bastion:
``{"id", "topic", "documents": [str, ...], "split", "sentences": [{"text", "label", "kind"},
...]}``, an optional ``"question"`` (the user's message, whose own figures and names the
answer may use), and ``"was_test": true`` on the dev answers that were once a test split.
``label`` is ``supported`` or ``unsupported``; ``kind`` says how the sentence was made:

* supported: ``verbatim`` (close to a context sentence), ``paraphrase`` (same facts in
  other words: the hard negatives), ``filler`` (no claim: "Let me know if ...");
* unsupported: ``number`` (a number or date changed), ``name`` (a person, place, product
  or month swapped), ``negation`` (the claim flipped), ``invented`` (a plausible fact on
  the topic that the context does not state), ``unrelated`` (a true fact off the topic).

Each line names its ``split``, ``dev`` or ``test``: thresholds and checks are chosen on
``dev`` only and numbers reported on ``test``, whose answers are written apart from the
scanner's checks and never read while changing them. Once a test split has been
evaluated and its misses published, its answers join ``dev`` marked ``was_test``: the
bench reports them apart from the other dev answers (:func:`dev_parts`), a check of how
far choices made on the others carry to answers written on other ground.

    items = load_grounding_set("test")
    answer = items[0].answer                  # the sentences joined by single spaces
    spans = items[0].spans                    # (start, end) of each sentence in it
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from bastion.errors import InputError
from bastion.guard.artifacts import bundled

if TYPE_CHECKING:
    from bastion.guard.scanners.output.grounding import Grounding, SentenceSupport

#: labels and kinds a sentence may carry.
LABELS: tuple[str, ...] = ("supported", "unsupported")
KINDS: dict[str, tuple[str, ...]] = {
    "supported": ("verbatim", "paraphrase", "filler"),
    "unsupported": ("number", "name", "negation", "invented", "unrelated"),
}
SPLITS: tuple[str, ...] = ("dev", "test", "all")
FILE = "grounding.jsonl"


@dataclass(frozen=True)
class Sentence:
    """One labelled answer sentence."""

    text: str
    label: str
    kind: str


@dataclass(frozen=True)
class Item:
    """One answer with its context documents and labelled sentences."""

    id: str
    topic: str
    documents: tuple[str, ...]
    sentences: tuple[Sentence, ...]
    split: str = "dev"
    was_test: bool = False
    #: the user's message the answer responds to ("" when the line has none)
    question: str = ""

    @cached_property
    def answer(self) -> str:
        """The answer text: the sentences joined by single spaces."""
        return " ".join(s.text for s in self.sentences)

    @cached_property
    def spans(self) -> tuple[tuple[int, int], ...]:
        """``(start, end)`` character offsets of each sentence in :attr:`answer`."""
        out = []
        at = 0
        for s in self.sentences:
            out.append((at, at + len(s.text)))
            at += len(s.text) + 1
        return tuple(out)


def load_grounding_set(split: str = "test") -> list[Item]:
    """The answers of ``split`` (``dev``, ``test`` or ``all``), in file order.

    Raises:
        InputError: an unknown split, or a line that breaks the format (with its number).
    """
    if split not in SPLITS:
        raise InputError(f"grounding set split must be one of {', '.join(SPLITS)}, got "
                         f"{split!r}")
    items = []
    path = bundled(FILE)
    for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        item = _item(line, f"{path}:{number}")
        if split in ("all", item.split):
            items.append(item)
    return items


def dev_parts(items: Iterable[Item]) -> dict[str, list[Item]]:
    """``items`` (from :func:`load_grounding_set`) of split dev in two parts: ``"original"``
    (the answers the checks were first built on) and ``"former_test"`` (``was_test``)."""
    dev = [i for i in items if i.split == "dev"]
    return {"original": [i for i in dev if not i.was_test],
            "former_test": [i for i in dev if i.was_test]}


def _item(line: str, where: str) -> Item:
    """Parse and check one line of the set."""
    try:
        data = json.loads(line)
        sentences = tuple(Sentence(str(s["text"]), str(s["label"]), str(s["kind"]))
                          for s in data["sentences"])
        item = Item(str(data["id"]), str(data.get("topic", "")),
                    tuple(str(d) for d in data["documents"]), sentences, str(data["split"]),
                    data.get("was_test", False) is True, str(data.get("question") or ""))
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{where}: not a grounding set line ({exc}); each line needs id, "
                         "documents, split and sentences with text, label and kind") from None
    if item.split not in ("dev", "test"):
        raise InputError(f"{where}: split must be dev or test, got {item.split!r}")
    if item.was_test and item.split != "dev":
        raise InputError(f"{where}: was_test marks a former test answer now in dev; set "
                         f"split to dev or drop was_test")
    for s in sentences:
        if s.kind not in KINDS.get(s.label, ()):
            raise InputError(f"{where}: sentence {s.text!r} has label {s.label!r} and kind "
                             f"{s.kind!r}; labels and kinds: {KINDS}")
    return item


def aligned_scores(item: Item, judged: Sequence[SentenceSupport],
                   score: Callable[[SentenceSupport], float]) -> list[float]:
    """One score per labelled sentence of ``item``: the highest ``score`` of the judged
    pieces that overlap it (the scanner's sentence splitter may cut differently)."""
    out = []
    for a, b in item.spans:
        out.append(max((score(j) for j in judged if j.start < b and j.end > a), default=0.0))
    return out


def sentence_scores(scanner: Grounding, items: Iterable[Item]
                    ) -> list[tuple[Sentence, float]]:
    """Every labelled sentence of ``items`` with the unsupportedness ``scanner`` gives it
    when it judges the whole answer against the item's documents."""
    out: list[tuple[Sentence, float]] = []
    for item in items:
        judged = scanner.judge(item.answer, item.documents, item.question)
        scores = aligned_scores(item, judged, scanner.unsupportedness)
        out.extend(zip(item.sentences, scores, strict=True))
    return out


def flag_counts(scored: Iterable[tuple[Sentence, float]], threshold: float
                ) -> dict[str, tuple[int, int]]:
    """``(flagged, total)`` per sentence kind, and per label under ``"supported"`` and
    ``"unsupported"``, for sentences flagged at ``score >= threshold``."""
    counts: dict[str, list[int]] = {}
    for sentence, score in scored:
        hit = int(score >= threshold and score > 0.0)
        for key in (sentence.label, sentence.kind):
            pair = counts.setdefault(key, [0, 0])
            pair[0] += hit
            pair[1] += 1
    return {k: (v[0], v[1]) for k, v in counts.items()}
