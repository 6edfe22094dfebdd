"""PRADA on synthetic query streams: natural-looking queries pass, an extraction-like
mixture of near-duplicates and far points is flagged; memory stays bounded; bad settings
and bad queries get clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.errors import ConfigError, InputError
from bastion.privacy.prada import PradaMonitor

DIMS = 64


def natural(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, DIMS) points of a 10-class Gaussian mixture and their classes."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(10, DIMS))
    labels = rng.integers(0, 10, size=n)
    return centres[labels] + rng.normal(0, 1, size=(n, DIMS)), labels


def extraction(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeds, then small signed steps from them and far random points, interleaved: the
    near (~0.4) and far (~20) distances of a synthetic-query attack."""
    rng = np.random.default_rng(seed)
    seeds, labels = natural(20, seed)
    xs, ys = list(seeds), list(labels)
    while len(xs) < n:
        i = int(rng.integers(0, len(seeds)))
        xs.append(seeds[i] + 0.05 * np.sign(rng.normal(size=DIMS)))
        ys.append(labels[i])
        xs.append(rng.uniform(-10, 10, size=DIMS))
        ys.append(int(rng.integers(0, 10)))
    return np.asarray(xs[:n]), np.asarray(ys[:n])


def run(monitor: PradaMonitor, key: str, xs: np.ndarray, ys: np.ndarray) -> list[bool]:
    return [monitor.observe(key, x, int(y)).flagged for x, y in zip(xs, ys, strict=True)]


def test_flags_an_extraction_stream_not_a_natural_one() -> None:
    monitor = PradaMonitor()
    benign = run(monitor, "benign", *natural(400, 0))
    attack = run(monitor, "attack", *extraction(400, 1))
    assert not any(benign)
    assert attack[-1] and not attack[0]
    state = monitor.verdict("attack")
    assert state is not None and state.flagged_at is not None
    assert state.w is not None and state.w < monitor.delta
    assert monitor.min_distances <= state.flagged_at <= 400
    clean = monitor.verdict("benign")
    assert clean is not None and clean.w is not None and clean.w >= monitor.delta


def test_the_flag_stays_and_is_new_once() -> None:
    monitor = PradaMonitor(min_distances=20, window=50)
    xs, ys = extraction(300, 2)
    news = [monitor.observe("k", x, int(y)).new for x, y in zip(xs, ys, strict=True)]
    assert sum(news) == 1
    after_flag = news.index(True)
    # natural queries afterwards do not clear it: a flag is about what was sent
    assert all(run(monitor, "k", *natural(200, 3)))
    assert monitor.verdict("k").flagged_at == after_flag + 1  # type: ignore[union-attr]


def test_deterministic_and_batch_equals_one_by_one() -> None:
    xs, ys = extraction(250, 4)
    a, b = PradaMonitor(min_distances=20, window=100), PradaMonitor(min_distances=20,
                                                                    window=100)
    one = [a.observe("k", x, int(y)).w for x, y in zip(xs, ys, strict=True)]
    batch = b.observe_batch("k", xs, ys)
    assert batch.w == one[-1] and batch.flagged_at == a.verdict("k").flagged_at  # type: ignore[union-attr]
    assert batch.new  # the batch flagged the key somewhere inside it


def test_memory_is_bounded() -> None:
    monitor = PradaMonitor(min_distances=10, window=30, max_per_class=5, max_clients=2)
    xs, ys = natural(400, 5)
    run(monitor, "a", xs, ys)
    assert monitor.stored_points("a") <= 10 * 5
    assert len(monitor._clients["a"].distances) == 30
    run(monitor, "b", xs[:5], ys[:5])
    run(monitor, "c", xs[:5], ys[:5])
    assert len(monitor) == 2 and monitor.verdict("a") is None  # least recently seen went


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"delta": 1.2}, "in (0, 1)"), ({"delta": True}, "in (0, 1)"),
    ({"window": 6000}, "<= 5000"), ({"min_distances": 2}, ">= 3"),
    ({"min_distances": 50, "window": 40}, "cannot exceed window"),
    ({"max_per_class": 0}, ">= 1"), ({"max_clients": 1.5}, "integer"),
])
def test_bad_settings_say_what_is_wrong(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        PradaMonitor(**kwargs)  # type: ignore[arg-type]


def test_bad_queries_say_what_is_wrong() -> None:
    monitor = PradaMonitor()
    with pytest.raises(InputError, match="finite"):
        monitor.observe("k", [0.0, float("nan")], 0)
    monitor.observe("k", np.zeros(4), 0)
    with pytest.raises(InputError, match="share a shape"):
        monitor.observe("k", np.zeros(5), 0)
    with pytest.raises(InputError, match="N labels"):
        monitor.observe_batch("k", np.zeros((3, 4)), [0, 1])
