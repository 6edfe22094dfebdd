"""Randomized smoothing (Cohen, Rosenfeld & Kolter, "Certified adversarial robustness via
randomized smoothing", ICML 2019).

The smoothed classifier ``g(x) = argmax_c P(f(x + δ) = c)``, δ ~ N(0, σ² I), is
certifiably robust in L2: if the top class has probability at least p_A > 1/2, then
``g`` is constant on the ball of radius ``σ Φ⁻¹(p_A)`` around x. Probabilities are
estimated by Monte Carlo, so every answer holds with probability at least 1 - alpha over
the noise; otherwise the procedures abstain (class -1, radius 0).

The base classifier sees ``batch`` noisy copies at a time, so memory is O(batch) whatever
``n`` is. The noise does not depend on the batch: each input takes one draw of the given
``torch.Generator`` as the seed of its noise stream (CERTIFY's selection uses the
stream's first ``n0`` rows, the estimate the next ``n``), and the stream comes in blocks
of :data:`CHUNK` rows, block ``k`` from a generator seeded with (stream seed + k) on the
model's device. The same generator state therefore gives the same answers at any batch
size and however the inputs are split between calls, and a batch that runs out of
device memory is halved and retried (:mod:`bastion.evaluation.backoff`) with unchanged
counts and radii.
Noisy inputs are not clipped to the data bounds, as in the paper; the certificate holds
for any input within the radius.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from scipy import stats
from torch import nn

from bastion.attacks.base import model_device
from bastion.errors import ConfigError
from bastion.evaluation.backoff import run_in_batches

ABSTAIN = -1
#: noisy copies per block of a noise stream. Small, so a batch that is not a multiple of
#: it regenerates little; a power of two, so halved batches of 2**k stay aligned.
CHUNK = 16
_MASK32 = 0xFFFFFFFF


@dataclass
class SmoothedPrediction:
    """Per-sample results, all (N,): ``label`` (ABSTAIN = -1 where abstaining),
    ``radius`` (L2, input units; 0 where abstaining), ``p_lower`` (lower confidence
    bound on the top class's probability; NaN for :func:`predict`), and the number of
    forward passes of the base classifier spent."""

    label: torch.Tensor
    radius: torch.Tensor
    p_lower: torch.Tensor
    forward_passes: int


def _check(sigma: float, n: int, alpha: float, batch: int) -> None:
    if not sigma > 0:
        raise ConfigError(f"sigma must be > 0 (noise level in input units), got {sigma!r}")
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"the number of noise samples must be an integer >= 1, got {n!r}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1), e.g. 0.001, got {alpha!r}")
    if not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"batch must be an integer >= 1, got {batch!r}")


def stream_seed(generator: torch.Generator) -> int:
    """One input's noise stream: a 32-bit seed, one draw of ``generator``."""
    return int(torch.randint(0, 2**32, (1,), generator=generator, device=generator.device))


def noise_rows(seed: int, start: int, stop: int, shape: torch.Size, *, device: torch.device,
               dtype: torch.dtype) -> torch.Tensor:
    """Rows [start, stop) of the N(0, I) noise stream ``seed``: (stop - start, *shape).

    Block ``k`` (rows ``k * CHUNK`` to ``(k + 1) * CHUNK``) comes from a generator seeded
    with ``(seed + k) mod 2**32`` (torch's CPU generator keeps 32 bits of a seed), so a
    row's value does not depend on the rows asked for with it, and a stream's blocks do
    not repeat within 2**32 blocks. Two inputs' streams may share blocks (seeds a few
    apart); harmless, since each input's certificate holds on its own.
    """
    gen = torch.Generator(device=device)
    parts = []
    for k in range(start // CHUNK, (stop - 1) // CHUNK + 1):
        gen.manual_seed((seed + k) & _MASK32)
        block = torch.randn((CHUNK, *shape), generator=gen, device=device, dtype=dtype)
        parts.append(block[max(start - k * CHUNK, 0):min(stop - k * CHUNK, CHUNK)])
    return torch.cat(parts)


def sample_counts(model: nn.Module, x: torch.Tensor, sigma: float, n: int, batch: int,
                  seed: int, first: int = 0) -> tuple[torch.Tensor, int]:
    """How often the base classifier picks each class on ``n`` noisy copies of one input.

    Args:
        x: one input (*in), without batch axis.
        batch: noisy copies per forward pass; halved after an out-of-memory error.
        seed, first: the noise is rows [first, first + n) of stream ``seed``
            (:func:`stream_seed`, :func:`noise_rows`).
    Returns:
        counts (K,) int64 summing to n, on the CPU, and the batch size in use at the end
        (pass it on, so the next input does not run out of memory again).
    """
    device = model_device(model)
    x = x.to(device)
    tally: list[torch.Tensor] = []

    def step(start: int, stop: int) -> None:
        noise = noise_rows(seed, first + start, first + stop, x.shape, device=device,
                           dtype=x.dtype)
        logits = model(x.unsqueeze(0) + sigma * noise)
        # kept only once the whole batch is through: a retried batch is not counted twice
        tally.append(torch.bincount(logits.argmax(1), minlength=logits.shape[1]))

    with torch.inference_mode():
        size = run_in_batches(step, n, batch)
    return torch.stack(tally).sum(0).cpu(), size


def lower_confidence_bound(k: int, n: int, alpha: float) -> float:
    """One-sided Clopper-Pearson lower bound on a binomial proportion, level 1 - alpha."""
    return 0.0 if k == 0 else float(stats.beta.ppf(alpha, k, n - k + 1))


def _generator(generator: torch.Generator | None, model: nn.Module) -> torch.Generator:
    if generator is not None:
        return generator
    return torch.Generator(device=model_device(model)).manual_seed(0)


def predict(model: nn.Module, x: torch.Tensor, sigma: float, n: int, alpha: float,
            batch: int = 1000, *, generator: torch.Generator | None = None
            ) -> SmoothedPrediction:
    """Cohen et al.'s PREDICT: the smoothed class of each input, or abstain.

    Abstains unless a two-sided binomial test says the top class beats the runner-up
    (counts n_A vs n_B, null p = 1/2) at level ``alpha``; then the returned class is
    g(x) with probability at least 1 - alpha.

    Args:
        x: (N, *in) inputs. sigma: noise standard deviation in input units.
        n: noise samples per input.
        batch: noisy copies per forward pass; halved after an out-of-memory error
            (same answers: the noise does not depend on it).
    """
    _check(sigma, n, alpha, batch)
    gen = _generator(generator, model)
    labels, passes = [], 0
    for xi in x:
        counts, batch = sample_counts(model, xi, sigma, n, batch, stream_seed(gen))
        passes += n
        top2 = counts.topk(2)
        n_a, n_b = int(top2.values[0]), int(top2.values[1])
        p_value = stats.binomtest(n_a, n_a + n_b, 0.5).pvalue if n_a + n_b > 0 else 1.0
        labels.append(int(top2.indices[0]) if p_value <= alpha else ABSTAIN)
    count = x.shape[0]
    return SmoothedPrediction(torch.tensor(labels, dtype=torch.long), torch.zeros(count),
                              torch.full((count,), math.nan), passes)


def certify(model: nn.Module, x: torch.Tensor, sigma: float, n0: int, n: int, alpha: float,
            batch: int = 1000, *, generator: torch.Generator | None = None
            ) -> SmoothedPrediction:
    """Cohen et al.'s CERTIFY: the smoothed class and an L2 radius for each input.

    ``n0`` noise samples pick the candidate class c_A; ``n`` fresh ones give a
    Clopper-Pearson lower bound p_A on P(f(x + δ) = c_A). If p_A > 1/2 the radius is
    ``σ Φ⁻¹(p_A)``, else the procedure abstains. With probability at least 1 - alpha,
    g(x') = c_A for every ||x' - x||_2 < radius.

    Args:
        x: (N, *in) inputs. sigma: noise standard deviation in input units.
        batch: noisy copies per forward pass; halved after an out-of-memory error
            (same answers: the noise does not depend on it).
    """
    _check(sigma, n, alpha, batch)
    _check(sigma, n0, alpha, batch)
    gen = _generator(generator, model)
    labels, radii, lows = [], [], []
    for xi in x:
        seed = stream_seed(gen)
        counts, batch = sample_counts(model, xi, sigma, n0, batch, seed)
        guess = int(counts.argmax())
        # fresh noise for the estimate: the stream's next n rows, not the selection's
        counts, batch = sample_counts(model, xi, sigma, n, batch, seed, first=n0)
        k = int(counts[guess])
        p_a = lower_confidence_bound(k, n, alpha)
        lows.append(p_a)
        if p_a > 0.5:
            labels.append(guess)
            radii.append(sigma * float(stats.norm.ppf(p_a)))
        else:
            labels.append(ABSTAIN)
            radii.append(0.0)
    return SmoothedPrediction(torch.tensor(labels, dtype=torch.long), torch.tensor(radii),
                              torch.tensor(lows), (n0 + n) * x.shape[0])


def gaussian_augment(x: torch.Tensor, sigma: float, generator: torch.Generator | None = None
                     ) -> torch.Tensor:
    """``x + σ ε``, ε ~ N(0, I), same shape as x: the training inputs of Cohen et al.

    Training the base classifier on these makes it accurate under the noise it is
    smoothed with; without it the smoothed classifier mostly abstains.
    """
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + sigma * noise


def gaussian_augmentation_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                               sigma: float, generator: torch.Generator | None = None
                               ) -> torch.Tensor:
    """Mean cross-entropy (scalar) of ``model`` on Gaussian-augmented ``x`` (N, *in)."""
    return nn.functional.cross_entropy(model(gaussian_augment(x, sigma, generator)), y)
