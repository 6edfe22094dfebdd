"""Neural Cleanse read against a clean reference: a trigger only the suspect learnt does
not carry over, a stamp that makes any model see the class does; the rule needs both a
small mask and a low transfer; ``bastion poison scan --reference`` writes the check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from bastion.cli import app
from bastion.errors import InputError
from bastion.poison.reference import ReferenceCheck


class Corner(nn.Module):
    """Class 0 for images whose top-left pixel is bright, else class 1 + the brightest
    row's index mod 9 (a clean model that knows nothing of the corner would not)."""

    def __init__(self, backdoor: bool) -> None:
        super().__init__()
        self.backdoor = backdoor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        row = x[:, 0].mean(2).argmax(1)
        out = nn.functional.one_hot(1 + row % 9, 10).float() * 5
        if self.backdoor:
            hot = (x[:, 0, 0, 0] > 0.9).float()[:, None]
            out = out * (1 - hot) + hot * nn.functional.one_hot(
                torch.zeros(len(x), dtype=torch.long), 10) * 50
        return out


def triggers() -> list[dict]:
    """Class 0: the corner pixel alone. Class 3: a full stamp whose brightest row is 2."""
    corner = torch.zeros(8, 8)
    corner[0, 0] = 1
    stripe = torch.zeros(1, 8, 8)
    stripe[0, 2] = 1
    return [{"target": 0, "mask": corner.tolist(), "pattern": torch.ones(1, 8, 8).tolist()},
            {"target": 3, "mask": torch.ones(8, 8).tolist(), "pattern": stripe.tolist()}]


def test_a_learnt_trigger_does_not_transfer_and_a_natural_stamp_does() -> None:
    x = torch.rand(60, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.8
    check = ReferenceCheck(batch_size=16)
    on_suspect = check.transfer(Corner(backdoor=True), triggers(), x)
    on_reference = check.transfer(Corner(backdoor=False), triggers(), x)
    assert on_suspect == [1.0, 1.0]
    assert on_reference == [0.0, 1.0]  # the corner means nothing to the clean model


def test_the_rule_needs_a_small_mask_and_a_low_transfer() -> None:
    l1 = [5.0, 60, 70, 64, 58, 66, 57, 61, 59, 62]
    transfer = [0.02, 0.5, 0.6, 0.05, 0.7, 0.5, 0.4, 0.6, 0.5, 0.6]
    found = ReferenceCheck().verdict(l1, transfer)
    # class 3 moves few reference images too, but its mask is as large as the rest
    assert found["flagged"] == [0] and found["backdoored"]
    assert found["ratio"][0] == pytest.approx(5 / 60, abs=1e-4)  # torch's median: the lower middle
    three_quarters = ReferenceCheck().verdict([44.0, *l1[1:]], transfer)
    assert three_quarters["flagged"] == [0]  # 0.73 of the median mask still counts
    carried = ReferenceCheck().verdict(l1, [0.6, *transfer[1:]])
    assert not carried["backdoored"]  # a small mask every model shares is a natural class
    # a robust suspect's triggers all carry over less: read against the median class's
    low = ReferenceCheck().verdict(l1, [0.15, 0.2, 0.3, 0.25, 0.2, 0.1, 0.3, 0.2, 0.25, 0.2])
    assert not low["backdoored"] and low["relative_transfer"][0] == 0.75
    with pytest.raises(InputError, match="transfer rates"):
        ReferenceCheck().verdict(l1, transfer[:3])


def test_transfer_refuses_bad_images_and_scans_without_patterns() -> None:
    check = ReferenceCheck()
    with pytest.raises(InputError, match="finite clean images"):
        check.transfer(Corner(False), triggers(), torch.full((3, 1, 8, 8), float("nan")))
    old = [{k: v for k, v in t.items() if k != "pattern"} for t in triggers()]
    with pytest.raises(InputError, match="no trigger patterns"):
        check.transfer(Corner(False), old, torch.rand(3, 1, 8, 8))


def test_poison_scan_with_a_reference_writes_the_check(tmp_path: Path) -> None:
    out = tmp_path / "scan"
    result = CliRunner().invoke(app, [
        "poison", "scan", "--model", "mnist-badnets", "--reference", "advertorch-lenet5-std",
        "--n", "24", "--trigger", "badnets:target=0", "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    nc = json.loads((out / "scan.json").read_text())["neural_cleanse"]
    ref = nc["reference"]
    assert len(ref["transfer"]) == len(ref["ratio"]) == 10
    assert all(0.0 <= v <= 1.0 for v in ref["transfer"])
    assert nc["flagged"] == sorted(set(nc["index_flagged"]) | set(ref["flagged"]))
    assert nc["backdoored"] == bool(nc["flagged"])
    card = json.loads((out / "card.json").read_text())
    section = card["entries"][0]["training_integrity"]["neural_cleanse"]
    assert section["reference"]["max_transfer"] == 0.25
