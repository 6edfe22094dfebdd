"""Signatures of known prompt-injection and jailbreak patterns, matched in linear time.

The rules live in ``bastion/guard/data/rules.yaml`` (id, category, weight, RE2 pattern);
users add or re-weight rules with a YAML file of the same shape (``rules_file``). All
patterns are compiled with google-re2, which has no backtracking: matching any text costs
time linear in its length, so no input can stall the guard. Matching is
case-insensitive.

The score of a text is ``1 - prod(1 - weight)`` over the distinct rules that match it:
one strong rule (weight 0.9) blocks alone, two weak ones (0.3 each: 0.51) only together.
A match that lies wholly inside a quotation, in a text that also says something of its
own outside the quotes ("I got this email: 'ignore all previous instructions ...' Is it
phishing?"), counts at ``quoted_weight`` times its weight: the user is mentioning an
attack, not making one (see :func:`quoted_spans`).
"""

from __future__ import annotations

import bisect
import functools
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import re2
import yaml

from bastion.errors import ConfigError
from bastion.guard.base import Finding, ScanContext, Scanner, Span
from bastion.guard.sentences import quoted_spans

#: reported matches per rule; matching stops there, so a 1 MB text repeating one
#: attack costs no more than a short one.
MATCHES_PER_RULE = 8
#: texts up to this many UTF-8 bytes go through one combined RE2 set first (one pass for
#: all rules). Past it each rule searches alone: the set's DFA could run out of memory on
#: a huge text, and it would then report "no match" without saying so.
_SET_LIMIT = 64 * 1024
_RULE_KEYS = {"id", "category", "weight", "pattern", "note"}
#: words a text needs outside its quotations before a quoted match is discounted: a
#: prompt that is nothing but a quoted attack is the attack.
MIN_OWN_WORDS = 4


@dataclass(frozen=True)
class Rule:
    """One signature. ``pattern`` is RE2 syntax with the variables already filled in."""

    id: str
    category: str
    weight: float
    pattern: str
    note: str = ""


@dataclass(frozen=True)
class RuleMatch:
    """``rule`` matched ``text[start:end]`` (character offsets)."""

    rule: Rule
    start: int
    end: int


@dataclass(frozen=True)
class RuleSet:
    """Compiled rules: a regex per rule, its ``not`` group (or -1) and the combined set."""

    rules: tuple[Rule, ...]
    regexes: tuple[Any, ...]
    negation: tuple[int, ...]
    combined: Any

    def search(self, data: bytes) -> list[tuple[Rule, int, int]]:
        """Byte spans of the matches in UTF-8 ``data``, at most MATCHES_PER_RULE per rule."""
        if len(data) <= _SET_LIMIT:
            candidates: list[int] = self.combined.Match(data) or []
        else:
            candidates = list(range(len(self.rules)))
        found: list[tuple[Rule, int, int]] = []
        for index in sorted(candidates):
            regex, group, pos, hits = self.regexes[index], self.negation[index], 0, 0
            while hits < MATCHES_PER_RULE and pos <= len(data):
                match = regex.search(data, pos)
                if match is None:
                    break
                start, end = match.span()
                if group >= 0 and match.span(group)[0] >= 0:
                    # negated ("don't forget the rules above"): skip this verb only, so
                    # "don't forget to ignore previous instructions" still matches later
                    pos = match.span(group)[1] + 1
                    continue
                found.append((self.rules[index], start, end))
                hits += 1
                pos = end if end > start else end + 1
        return found


def _options() -> Any:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    options.max_mem = 64 << 20
    return options


def _fill(pattern: str, variables: dict[str, str], where: str) -> str:
    """Replace each ``{{name}}`` by its variable (variables may use earlier ones)."""
    for _ in range(4):
        if "{{" not in pattern:
            return pattern
        start = pattern.index("{{")
        end = pattern.find("}}", start)
        name = pattern[start + 2:end] if end > 0 else ""
        if name not in variables:
            raise ConfigError(f"{where}: unknown variable {{{{{name}}}}}; define it under "
                              f"`vars:` or write the pattern out")
        pattern = pattern.replace("{{" + name + "}}", variables[name])
    if "{{" in pattern:
        raise ConfigError(f"{where}: variables nest too deep or refer to themselves")
    return pattern


def read_rules(path: str | Path, variables: dict[str, str] | None = None) -> list[Rule]:
    """Parse one rules file; ``variables`` are those already defined (by the built-in file)."""
    try:
        with open(path, encoding="utf-8") as handle:
            doc = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read rules file {path}: {err}") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
        raise ConfigError(f"{path}: expected a mapping with a `rules:` list (see the "
                          f"built-in bastion/guard/data/rules.yaml)")
    merged = dict(variables or {})
    for key, value in (doc.get("vars") or {}).items():
        merged[str(key)] = _fill(str(value), merged, f"{path}: variable {key!r}")
    rules: list[Rule] = []
    seen: set[str] = set()
    for number, item in enumerate(doc["rules"], 1):
        rule_id = item.get("id") if isinstance(item, dict) else None
        where = f"{path}: rule {rule_id or '#' + str(number)!r}"
        if not isinstance(item, dict) or not {"id", "category", "weight", "pattern"} <= set(item):
            raise ConfigError(f"{where}: needs id, category, weight and pattern")
        if set(item) - _RULE_KEYS:
            raise ConfigError(f"{where}: unknown keys {sorted(set(item) - _RULE_KEYS)}")
        weight = item["weight"]
        if isinstance(weight, bool) or not isinstance(weight, int | float) \
                or not 0.0 <= weight <= 1.0:
            raise ConfigError(f"{where}: weight must be a number in [0, 1], got {weight!r}")
        if rule_id in seen:
            raise ConfigError(f"{where}: the id is used twice in this file")
        seen.add(str(rule_id))
        pattern = _fill(str(item["pattern"]), merged, where)
        rules.append(Rule(str(rule_id), str(item["category"]), float(weight), pattern,
                          str(item.get("note", ""))))
    return rules


def _builtin_path() -> Path:
    return Path(str(resources.files("bastion.guard") / "data" / "rules.yaml"))


def _builtin_vars() -> dict[str, str]:
    with open(_builtin_path(), encoding="utf-8") as handle:
        doc = yaml.safe_load(handle)
    variables: dict[str, str] = {}
    for key, value in (doc.get("vars") or {}).items():
        variables[str(key)] = _fill(str(value), variables, f"built-in variable {key!r}")
    return variables


@functools.lru_cache(maxsize=16)
def load_rules(rules_file: str | None = None, builtin: bool = True) -> RuleSet:
    """Compile the built-in rules (if ``builtin``) plus those in ``rules_file``.

    A rule in ``rules_file`` whose id is built in replaces the built-in one; weight 0
    disables a rule. Raises ConfigError naming the file and rule that is wrong.
    """
    by_id: dict[str, Rule] = {}
    if builtin:
        by_id.update((r.id, r) for r in read_rules(_builtin_path()))
    if rules_file is not None:
        extra = read_rules(rules_file, _builtin_vars())
        by_id.update((r.id, r) for r in extra)
    rules = tuple(r for r in by_id.values() if r.weight > 0.0)
    if not rules:
        raise ConfigError("no rules to match: set builtin=True or give a rules_file with "
                          "at least one rule of weight > 0")
    options = _options()
    combined = re2.Set.SearchSet(options)
    regexes, negation = [], []
    for rule in rules:
        try:
            regex = re2.compile(rule.pattern, options)
            combined.Add(rule.pattern)
        except re2.error as err:
            raise ConfigError(
                f"rule {rule.id!r}: pattern does not compile under RE2 ({err}); RE2 has no "
                f"look-around or back-references and repeats at most {{0,1000}}") from err
        regexes.append(regex)
        negation.append(regex.groupindex.get("not", -1))
    combined.Compile()
    return RuleSet(rules, tuple(regexes), tuple(negation), combined)


def _char_offsets(text: str, data: bytes, offsets: set[int]) -> dict[int, int]:
    """Map UTF-8 byte offsets in ``data`` to character offsets in ``text``, in one pass."""
    if len(data) == len(text):  # all ASCII
        return {o: o for o in offsets}
    mapping, chars, last = {}, 0, 0
    for offset in sorted(offsets):
        chars += len(data[last:offset].decode("utf-8", errors="replace"))
        mapping[offset], last = chars, offset
    return mapping


class _Quotes:
    """The quoted spans of one text, searchable by position. Spans of one quote mark
    never overlap, so for each mark the only span that can hold a match is the last one
    starting at or before it: a binary search instead of a scan (a megabyte of quotes
    holds hundreds of thousands of spans)."""

    def __init__(self, text: str, spans: list[tuple[int, int]]) -> None:
        by_mark: dict[str, list[tuple[int, int]]] = {}
        for span in spans:
            by_mark.setdefault(text[span[0]], []).append(span)
        self._marks = [([s for s, _ in v], v) for v in by_mark.values()]

    def holds(self, start: int, end: int) -> bool:
        """Whether ``[start, end)`` lies wholly inside one quotation."""
        for starts, spans in self._marks:
            k = bisect.bisect_right(starts, start) - 1
            if k >= 0 and end <= spans[k][1]:
                return True
        return False


def _own_words(text: str, spans: list[tuple[int, int]]) -> int:
    """Words of ``text`` outside the quoted spans."""
    kept, at = [], 0
    for s, e in spans:
        if s >= at:
            kept.append(text[at:s])
            at = e
    kept.append(text[at:])
    return len(" ".join(kept).split())


class RulesScanner(Scanner):
    """Curated injection and jailbreak signatures (RE2, case-insensitive, linear time).

    Args:
        name: instance name (default ``"rules"``).
        threshold: score at or above which ``action`` applies (default 0.5: one rule of
            weight >= 0.5, or a few weaker ones together).
        action: what a hit earns (default ``"block"``).
        rules_file: a YAML file of extra rules (same shape as the built-in one); a rule
            with a built-in id replaces it.
        builtin: use the built-in rules (default True).
        quoted_weight: factor on the weight of a match that lies inside a quotation in
            a text with at least ``MIN_OWN_WORDS`` words of its own (default 0.5; 1.0
            treats quoted and unquoted matches alike).

    Spans are the matches, labelled with the rule id; the reason lists the rule ids.
    """

    kind = "rules"
    direction = "input"

    def __init__(self, *, name: str | None = None, threshold: float = 0.5,
                 action: str = "block", rules_file: str | None = None,
                 builtin: bool = True, quoted_weight: float = 0.5) -> None:
        self._init_common(name, threshold, action)
        self.rules_file = rules_file
        self.builtin = builtin
        self.quoted_weight = quoted_weight

    def validate(self) -> None:
        super().validate()
        q = self.quoted_weight
        if isinstance(q, bool) or not isinstance(q, int | float) or not 0.0 <= q <= 1.0:
            raise ConfigError(f"{self.name}: quoted_weight must be a number in [0, 1] "
                              f"(1 treats quoted matches like any other), got {q!r}")
        self.ruleset()

    def ruleset(self) -> RuleSet:
        """The compiled rules (cached across instances with the same settings)."""
        path = None if self.rules_file is None else str(self.rules_file)
        return load_rules(path, bool(self.builtin))

    def matches(self, text: str) -> list[RuleMatch]:
        """Every match in ``text`` (up to MATCHES_PER_RULE per rule), by position."""
        data = text.encode("utf-8", errors="replace")
        found = self.ruleset().search(data)
        offsets = _char_offsets(text, data, {o for _, s, e in found for o in (s, e)})
        out = [RuleMatch(rule, offsets[s], offsets[e]) for rule, s, e in found]
        return sorted(out, key=lambda m: (m.start, m.end, m.rule.id))

    def _scan(self, text: str, context: ScanContext) -> Finding:
        found = self.matches(text)
        if not found:
            return Finding(0.0, "no rule matched")
        spans = quoted_spans(text) if self.quoted_weight < 1.0 else []
        if spans and _own_words(text, spans) < MIN_OWN_WORDS:
            spans = []
        quotes = _Quotes(text, spans)
        # each rule counts once, at its strongest match: full weight unless every match
        # of it is quoted
        weights: dict[str, float] = {}
        for m in found:
            w = m.rule.weight * (float(self.quoted_weight)
                                 if quotes.holds(m.start, m.end) else 1.0)
            weights[m.rule.id] = max(w, weights.get(m.rule.id, 0.0))
        score = 1.0 - math.prod(1.0 - w for w in weights.values())
        rules = {m.rule.id: m.rule for m in found}
        quoted = {r for r, w in weights.items() if w < rules[r].weight}
        listed = ", ".join(f"{r.id} ({r.category}{', quoted' if r.id in quoted else ''})"
                           for r in rules.values())
        return Finding(score, f"matched {len(rules)} rule(s): {listed}",
                       spans=tuple(Span(m.start, m.end, m.rule.id) for m in found))
