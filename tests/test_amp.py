"""Mixed precision for attacks: used when its check passes, refused (float32) when not."""

from __future__ import annotations

import torch
from tests.conftest import tiny_cnn
from torch import nn

from bastion.attacks import PGD
from bastion.evaluation.amp import Autocast
from bastion.evaluation.runner import evaluate
from bastion.threat import ThreatModel

THREAT = ThreatModel("Linf", 0.06)


def sharp_cnn() -> nn.Module:
    model = tiny_cnn()
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(3)
    return model


class Offset(nn.Module):
    """``net``'s logits plus a large constant: in bfloat16 (8 bits of mantissa) every
    logit rounds to the same few values, so the predictions fall apart under autocast."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) + 4096.0


def offset() -> nn.Module:
    return Offset(sharp_cnn()).eval()


def data(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        return x, sharp_cnn()(x).argmax(1)


def test_autocast_runs_in_bfloat16_on_the_cpu_and_returns_float32() -> None:
    seen: list[torch.dtype] = []
    net = sharp_cnn()
    net[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    out = Autocast(net, torch.bfloat16)(data(4)[0])
    assert seen == [torch.bfloat16] and out.dtype == torch.float32


def test_amp_that_passes_its_check_is_used_and_keeps_the_attack_strong() -> None:
    x, y = data()
    threat = ThreatModel("Linf", 0.15)  # at 0.1 bfloat16 PGD misses 2 more of 40: refused
    fp32 = evaluate(sharp_cnn(), (x, y), threat, [PGD(steps=10)], batch_size=16)
    mixed = evaluate(sharp_cnn(), (x, y), threat, [PGD(steps=10)], batch_size=16, amp=True)
    record = mixed.params["amp"]
    assert record["used"] and record["dtype"] == "bfloat16" and record["probe"] == 40
    assert record["argmax_agreement"] >= 0.99 and record["max_abs_logit_diff"] > 0
    assert record["robust_amp"] <= record["robust_fp32"] + record["tolerance"]
    assert not any(f["id"] == "amp-refused" for f in mixed.flags)
    assert mixed.clean_accuracy == fp32.clean_accuracy
    assert 0 < fp32.robust_accuracy < fp32.clean_accuracy
    assert mixed.robust_accuracy <= fp32.robust_accuracy + record["tolerance"]


def test_amp_that_fails_its_check_falls_back_to_float32_and_says_so() -> None:
    x, y = data()
    with torch.no_grad():
        y = offset()(x).argmax(1)
    fp32 = evaluate(offset(), (x, y), THREAT, [PGD(steps=5)], batch_size=16)
    mixed = evaluate(offset(), (x, y), THREAT, [PGD(steps=5)], batch_size=16,
                     amp=True)
    record = mixed.params["amp"]
    assert not record["used"] and record["argmax_agreement"] < 0.99
    assert "refused" in record["note"]
    assert [f["id"] for f in mixed.flags if f["id"].startswith("amp")] == ["amp-refused"]
    assert mixed.per_attack == fp32.per_attack  # the float32 numbers, exactly


def test_frozen_copy_and_channels_last_work_under_autocast() -> None:
    from bastion.attacks import Square
    from bastion.attacks._inference import inference_model
    from bastion.evaluation.layout import channels_last

    x, y = data()
    fast = Autocast(sharp_cnn(), torch.bfloat16).eval()
    copy = inference_model(fast, x[:8])
    with torch.no_grad():
        assert torch.allclose(copy(x), fast(x), rtol=0, atol=1e-4)
    with channels_last(fast.model, x[:8]) as converted, torch.no_grad():
        assert converted and torch.allclose(fast(x), copy(x), rtol=0, atol=1e-4)
    threat = ThreatModel("Linf", 0.15)
    mixed = evaluate(sharp_cnn(), (x, y), threat, [Square(n_queries=40)], batch_size=16,
                     amp=True)
    assert mixed.params["amp"]["used"] and 0 <= mixed.robust_accuracy <= mixed.clean_accuracy
