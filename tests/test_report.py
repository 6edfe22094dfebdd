"""The robustness card: schema, validation messages, files written, HTML and plots."""

from __future__ import annotations

import base64
import copy
import io
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bastion.errors import ConfigError, InputError
from bastion.report import (
    CARD_SCHEMA_VERSION,
    CardEntry,
    build_card,
    validate_card,
    write_card,
)
from bastion.report._schema import load_schema
from bastion.report.html import render_html
from bastion.report.plots import attack_bars, sweep_plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RUN = {"run_id": "3f2a9c01ab77", "seed": 0,
       "versions": {"python": "3.11.9", "bastion": "0.1.0", "torch": "2.13.0"},
       "command": "bastion evaluate --model mnist-lenet5-pgd --n 1000 --out out/card"}


def evaluation() -> dict[str, Any]:
    """Shaped like Evaluation.to_dict() for FGSM and PGD at eps 0.3 with a 0.1 sweep point."""
    return {
        "n": 1000, "clean_accuracy": 0.98, "robust_accuracy": 0.92,
        "per_attack": {"fgsm": 0.958, "pgd": 0.92},
        "sweep": [
            {"eps": 0.1, "robust_accuracy": 0.97, "per_attack": {"fgsm": 0.97, "pgd": 0.97}},
            {"eps": 0.3, "robust_accuracy": 0.92, "per_attack": {"fgsm": 0.958, "pgd": 0.92}},
        ],
        "passes": {"fgsm": {"forward": 978, "backward": 489},
                   "pgd": {"forward": 19298, "backward": 18838}},
        "seconds": 16.8,
        "threat": {"norm": "Linf", "eps": 0.3, "bounds": [0.0, 1.0]},
        "params": {"eps_sweep": [0.1, 0.3], "batch_size": 250, "seed": 0, "n": 1000,
                   "attacks": {"pgd": {"class": "PGD", "steps": 40}}},
    }


def entry(name: str = "mnist-lenet5-pgd", **sections: Any) -> CardEntry:
    return CardEntry(
        model={"name": name, "kind": "bundled", "description": "LeNet-5, PGD-trained",
               "digest": "9b1c0d2e4f"},
        data={"name": "mnist", "split": "test", "n": 1000, "source": "bastion-data-mnist"},
        evaluation=evaluation(),
        sections=sections,
    )


@pytest.fixture(params=["jsonschema", "fallback"])
def validator(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with jsonschema and again with the built-in checker (jsonschema hidden)."""
    if request.param == "jsonschema":
        pytest.importorskip("jsonschema")
    else:
        monkeypatch.setitem(sys.modules, "jsonschema", None)  # makes `import jsonschema` fail
    return str(request.param)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_card(tmp_path_factory.mktemp("card"), [entry()], run=RUN)


def test_schema_file_is_valid_draft_2020_12() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_card_from_realistic_evaluation_validates(validator: str) -> None:
    card = build_card([entry(), entry("mnist-smallcnn-std")], run=RUN)
    assert card["schema_version"] == CARD_SCHEMA_VERSION == 1
    assert card["kind"] == "bastion.card"
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", card["created"])
    assert card["run"] == RUN
    assert [e["model"]["name"] for e in card["entries"]] == ["mnist-lenet5-pgd",
                                                              "mnist-smallcnn-std"]
    validate_card(json.loads(json.dumps(card)))  # survives a trip through JSON text


def test_card_from_a_real_evaluation_validates(mlp: Any, batch: Any) -> None:
    import bastion

    result = bastion.evaluate(mlp, batch, bastion.ThreatModel("Linf", 0.1),
                              [bastion.FGSM()], eps_sweep=[0.05], batch_size=4)
    card_entry = CardEntry(
        model={"name": "tiny-mlp", "kind": "file", "description": "", "digest": "00"},
        data={"name": "random", "split": "test", "n": len(batch[1]), "source": "conftest"},
        evaluation=result.to_dict())
    card = build_card([card_entry], run=RUN)
    assert card["entries"][0]["evaluation"]["threat"]["bounds"] == [0.0, 1.0]


def test_additional_sections_and_fields_are_accepted(validator: str) -> None:
    card = build_card([entry(diagnostics={"gradient_masking": False})], run=RUN)
    card["future_top_level_field"] = {"anything": 1}
    card["entries"][0]["certified"] = {"accuracy": 0.5}
    validate_card(card)
    assert card["entries"][0]["diagnostics"] == {"gradient_masking": False}


def test_section_named_like_a_core_field_is_refused() -> None:
    with pytest.raises(ConfigError, match="model"):
        build_card([entry(model={"name": "x"})], run=RUN)


def _drop(*path: str | int) -> Callable[[dict[str, Any]], None]:
    def apply(card: dict[str, Any]) -> None:
        target: Any = card
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return apply


def _set(value: Any, *path: str | int) -> Callable[[dict[str, Any]], None]:
    def apply(card: dict[str, Any]) -> None:
        target: Any = card
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return apply


E = ("entries", 0)
EV = (*E, "evaluation")
BAD_CARDS = {
    "missing model name": (_drop(*E, "model", "name"), "$.entries[0].model.name"),
    "unknown model kind": (_set("zoo", *E, "model", "kind"), "$.entries[0].model.kind"),
    "n as a string": (_set("1000", *EV, "n"), "$.entries[0].evaluation.n"),
    "data n as a bool": (_set(True, *E, "data", "n"), "$.entries[0].data.n"),
    "accuracy above 1": (_set(1.5, *EV, "clean_accuracy"), "evaluation.clean_accuracy"),
    "accuracy is NaN": (_set(float("nan"), *EV, "clean_accuracy"), "evaluation.clean_accuracy"),
    "attack accuracy null": (_set(None, *EV, "per_attack", "pgd"), "evaluation.per_attack.pgd"),
    "sweep point without eps": (_drop(*EV, "sweep", 1, "eps"), "evaluation.sweep[1].eps"),
    "negative passes": (_set(-1, *EV, "passes", "fgsm", "forward"), "passes.fgsm.forward"),
    "unknown norm": (_set("Linfinity", *EV, "threat", "norm"), "evaluation.threat.norm"),
    "one bound": (_set([0.0], *EV, "threat", "bounds"), "evaluation.threat.bounds"),
    "missing params": (_drop(*EV, "params"), "$.entries[0].evaluation.params"),
    "seed as a string": (_set("0", "run", "seed"), "$.run.seed"),
    "version not a string": (_set(2, "run", "versions", "torch"), "$.run.versions.torch"),
    "missing command": (_drop("run", "command"), "$.run.command"),
    "schema version 2": (_set(2, "schema_version"), "$.schema_version"),
    "wrong kind": (_set("bastion.record", "kind"), "$.kind"),
    "no entries": (_set([], "entries"), "$.entries"),
    # what the schema cannot say, checked by validate_card itself
    "robust above clean": (_set(0.99, *EV, "robust_accuracy"), "evaluation.robust_accuracy"),
    "attack below worst case": (_set(0.5, *EV, "per_attack", "fgsm"), "per_attack.fgsm"),
    "data n disagrees": (_set(999, *E, "data", "n"), "$.entries[0].data.n"),
    "sweep misses main eps": (_set(0.2, *EV, "sweep", 1, "eps"), "evaluation.sweep"),
    "sweep not ascending": (_set(0.5, *EV, "sweep", 0, "eps"), "evaluation.sweep"),
    "passes for another attack": (_drop(*EV, "passes", "fgsm"), "evaluation.passes"),
    "bounds reversed": (_set([1.0, 0.0], *EV, "threat", "bounds"), "evaluation.threat.bounds"),
    "created not a time": (_set("yesterday", "created"), "$.created"),
}


@pytest.mark.parametrize("case", list(BAD_CARDS), ids=list(BAD_CARDS))
def test_bad_field_is_rejected_naming_the_field(case: str, validator: str) -> None:
    mutate, field = BAD_CARDS[case]
    card = copy.deepcopy(build_card([entry()], run=RUN))
    mutate(card)
    with pytest.raises(InputError) as raised:
        validate_card(card)
    assert field in str(raised.value)


def test_build_card_rejects_an_empty_list_and_non_entries() -> None:
    with pytest.raises(InputError, match="at least one entry"):
        build_card([], run=RUN)
    with pytest.raises(InputError, match="entries\\[0\\]"):
        build_card([entry().to_dict()], run=RUN)  # type: ignore[list-item]


def test_write_card_writes_json_and_html(written: tuple[Path, Path]) -> None:
    json_path, html_path = written
    assert (json_path.name, html_path.name) == ("card.json", "card.html")
    card = json.loads(json_path.read_text())
    validate_card(card)
    assert card["entries"][0]["evaluation"]["per_attack"] == {"fgsm": 0.958, "pgd": 0.92}
    assert html_path.read_text().startswith("<!doctype html>")
    assert not list(json_path.parent.glob("*.tmp"))


def test_html_shows_names_percentages_and_embedded_pngs(written: tuple[Path, Path]) -> None:
    page = written[1].read_text()
    for text in ("mnist-lenet5-pgd", "98.0%", "92.0%", "95.8%", "97.0%", "19,298",
                 RUN["run_id"], RUN["command"], "torch 2.13.0",
                 "robust accuracy is an upper bound on true robustness"):
        assert text.lower() in page.lower(), text
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 2
    assert base64.b64decode(images[0]).startswith(PNG_SIGNATURE)
    assert not re.search(r"<script|<link|https?://", page)  # self-contained


def test_html_escapes_a_malicious_model_name() -> None:
    evil = '<script>alert("x")</script>'
    card_entry = entry(evil)
    card_entry.model["description"] = "<img src=x onerror=alert(1)>"
    page = render_html(build_card([card_entry], run={**RUN, "command": "echo <b>hi</b>"}))
    assert "<script" not in page and "<img src=x" not in page and "<b>hi" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "echo &lt;b&gt;hi&lt;/b&gt;" in page


@pytest.mark.parametrize("sweep_eps", [[0.3], [0.0, 0.1, 0.2, 0.3]], ids=["single", "multi"])
def test_plots_return_png_bytes(sweep_eps: list[float]) -> None:
    from PIL import Image

    ev = evaluation()
    ev["sweep"] = [{"eps": e, "robust_accuracy": 0.92 + (0.3 - e) / 5,
                    "per_attack": {"fgsm": 0.958, "pgd": 0.92 + (0.3 - e) / 5}}
                   for e in sweep_eps]
    for draw in (sweep_plot, attack_bars):
        png = draw(ev, model_name="model $x$ with a dollar")
        assert png.startswith(PNG_SIGNATURE)
        with Image.open(io.BytesIO(png)) as image:
            assert image.size == (640, 400)


def test_sanity_checks_section_for_old_clean_and_flagged_cards(validator: str) -> None:
    old = build_card([entry()], run=RUN)  # made before flags existed: still valid
    assert "Not recorded" in render_html(old)
    clean = entry()
    clean.evaluation.update(flags=[], stages={}, probe={"n": 256})
    page = render_html(build_card([clean], run=RUN))
    assert "Sanity checks" in page and "None raised" in page and "256 probed" in page
    flagged = entry()
    flagged.evaluation["flags"] = [{"id": "zero-gradients", "severity": "fail",
                                    "title": "Input gradients are zero",
                                    "evidence": {"zero_gradient": 40}, "advice": "Run <square>."}]
    flagged.evaluation["stages"] = {"pgd": {"apgd-ce": {"broken": 3, "uses_gradients": True,
                                                        "passes": {"forward": 9, "backward": 9}}}}
    card = build_card([flagged], run=RUN)
    page = render_html(card)
    assert 'class="flag fail"' in page and "FAIL: Input gradients are zero" in page
    assert "Run &lt;square&gt;." in page and "apgd-ce" in page and "white-box" in page
    for mutate, field in [
        (_set("error", *EV, "flags", 0, "severity"), "flags[0].severity"),
        (_drop(*EV, "flags", 0, "advice"), "flags[0].advice"),
        (_set(-1, *EV, "stages", "pgd", "apgd-ce", "broken"), "broken"),
        (_set(5000, *EV, "stages", "pgd", "apgd-ce", "broken"), "stages.pgd"),
        (_set({"x": {}}, *EV, "stages", "cw"), "stages.cw"),
    ]:
        bad = copy.deepcopy(card)
        mutate(bad)
        with pytest.raises(InputError, match=re.escape(field)):
            validate_card(bad)
