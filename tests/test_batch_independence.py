"""Batch-size independence: an attack's answer for a sample does not depend on its batch.

Contract over every registered attack: attacking 12 samples at once, or in batches of 5
with the streams of the same samples (:class:`bastion.common.draws.SampleRandom`), gives
the same success per sample and the same adversarial points (within float tolerance).
"""

from __future__ import annotations

import pytest
import torch
from tests.conftest import tiny_cnn
from tests.test_attacks import skip_unsupported, with_random_start
from torch import nn

from bastion.attacks import REGISTRY
from bastion.common.draws import SampleRandom, mix32, randints
from bastion.threat import NORMS, ThreatModel

EPS = {"Linf": 0.06, "L2": 0.6, "L1": 4.0}  # some samples break, some not
N, CHUNK = 12, 5


def batches(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(n, s + size)) for s in range(0, n, size)]


@pytest.fixture(scope="module")
def sharp() -> nn.Module:
    """The contract's tiny conv net with its weights tripled: easy to fool at small eps."""
    model = tiny_cnn()
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(3)
    return model


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_batch_size_does_not_change_an_attack_s_results(sharp: nn.Module, name: str,
                                                         norm: str) -> None:
    skip_unsupported(name, norm)
    cnn = sharp
    x = torch.rand(N, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        y = cnn(x).argmax(1)  # all right at first, so every sample is attacked
    threat = ThreatModel(norm=norm, eps=EPS[norm])
    attack = with_random_start(name)
    whole = attack.run(cnn, x, y, threat,
                       generator=SampleRandom.for_samples(7, torch.arange(N)))
    parts = [attack.run(cnn, x[a:b], y[a:b], threat,
                        generator=SampleRandom.for_samples(7, torch.arange(a, b)))
             for a, b in batches(N, CHUNK)]
    assert bool(whole.success.any())  # the comparison covers broken samples too
    assert torch.equal(whole.success, torch.cat([p.success for p in parts]))
    torch.testing.assert_close(whole.x_adv, torch.cat([p.x_adv for p in parts]),
                               atol=1e-5, rtol=0)


def test_sample_streams_depend_on_the_sample_alone() -> None:
    keys = SampleRandom.for_samples(3, torch.arange(10))
    part = SampleRandom.for_samples(3, torch.arange(4, 7))
    for _ in range(2):  # the k-th draw of a sample is the same in any company
        assert torch.equal(keys.rand((10, 2, 3))[4:7], part.rand((3, 2, 3)))
    assert torch.equal(keys.randint(0, 5, (10,))[4:7], part.randint(0, 5, (3,)))
    sub = keys.rows(torch.tensor([8, 1]))
    assert torch.equal(sub.randn((2, 4)), keys.randn((10, 4))[[8, 1]])
    other = SampleRandom.for_samples(4, torch.arange(10))
    assert not torch.equal(other.rand((10,)), SampleRandom.for_samples(3, torch.arange(10))
                           .rand((10,)))


def test_fused_integer_draws_match_the_same_draws_in_turn() -> None:
    """``randints`` is a faster way to make several (N,) draws, not other numbers."""
    who = torch.tensor([9, 0, 4])
    bounds = [(0, 25), (3, 5), (0, 2)]
    one, fused = (SampleRandom.for_samples(2, torch.arange(10)) for _ in range(2))
    in_turn = [one.randint(low, high, (10,))[who] for low, high in bounds]
    got = randints(fused, bounds, who, 10)
    assert all(torch.equal(a, b) for a, b in zip(in_turn, got, strict=True))
    assert one.count == fused.count == 3  # the next draws agree as well
    assert torch.equal(one.rand((10, 2)), fused.rand((10, 2)))
    generator = torch.Generator().manual_seed(0)
    expected = [torch.randint(low, high, (10,), generator=generator)[who]
                for low, high in bounds]
    got = randints(torch.Generator().manual_seed(0), bounds, who, 10)
    assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))
    with pytest.raises(ValueError, match="high - low"):
        fused.randints([(3, 3)], who)


def test_sample_draws_have_the_right_distribution() -> None:
    stream = SampleRandom.for_samples(0, torch.arange(200))
    u = stream.rand((200, 500), torch.float64)
    assert float(u.min()) > 0 and float(u.max()) < 1
    assert abs(float(u.mean()) - 0.5) < 0.005 and abs(float(u.var()) - 1 / 12) < 0.002
    z = stream.randn((200, 500), torch.float64)
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01
    k = stream.randint(2, 7, (200, 500))
    counts = torch.bincount(k.flatten() - 2, minlength=5).double() / k.numel()
    assert int(k.min()) == 2 and int(k.max()) == 6
    assert torch.allclose(counts, torch.full((5,), 0.2, dtype=torch.float64), atol=0.005)
    with pytest.raises(ValueError, match="first"):
        stream.rand((3,))


def test_the_hash_is_a_bijection_on_a_sample_of_words() -> None:
    words = torch.arange(0, 2**32, 2**32 // 100_003, dtype=torch.int64)
    hashed = mix32(words)
    assert int(hashed.min()) >= 0 and int(hashed.max()) < 2**32
    assert hashed.unique().numel() == words.numel()


def test_every_registered_attack_draws_per_sample() -> None:
    assert [n for n, cls in REGISTRY.items() if not cls.per_sample_draws] == []
