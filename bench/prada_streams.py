"""Query streams for the PRADA benchmark (a module of generators; `python
bench/prada_streams.py` prints a summary of one stream of each kind).

* ``benign``: MNIST images of one split in a random order (a client replaying a test set);
* ``knockoff``: a Knockoff-style attacker pool queried in a random order: Fashion-MNIST,
  scikit-learn digits upscaled to 28x28, and uniform noise;
* ``jacobian``: Papernot et al. (2017) style: a small seed set of MNIST images, then
  rounds of ``x + lam * sign(grad)`` steps of a local copy trained on the victim's labels
  (each round doubles the set, every new point is one query).

Every stream is an (N, 1, 28, 28) float32 tensor in [0, 1], deterministic in its seed.
The Jacobian stream needs the victim's labels while it grows: ``label_of(x) -> (N,)``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from torch.nn import functional as F

from bastion import data
from bastion.privacy._fit import fit

Labeller = Callable[[torch.Tensor], torch.Tensor]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def benign(split: str, n: int, seed: int) -> torch.Tensor:
    """``n`` MNIST ``split`` images in a random order (``n`` <= the split's size)."""
    x = data.load("mnist", split).x
    return x[torch.randperm(len(x), generator=_gen(seed))[:n]]


def knockoff(split: str, n: int, seed: int, noise_share: float = 0.15) -> torch.Tensor:
    """``n`` queries drawn without replacement from Fashion-MNIST ``split``, digits
    ``split`` (upscaled) and ``noise_share * n`` uniform-noise images, shuffled."""
    fashion = data.load("fashion-mnist", split).x
    digits = F.interpolate(data.load("digits", split).x, size=(28, 28), mode="bilinear",
                           align_corners=False).clamp(0, 1)
    gen = _gen(seed)
    noise = torch.rand((int(noise_share * n), 1, 28, 28), generator=gen)
    pool = torch.cat([fashion, digits, noise])
    if len(pool) < n:
        raise ValueError(f"the pool has {len(pool)} images, fewer than the {n} asked")
    return pool[torch.randperm(len(pool), generator=gen)[:n]]


def _signed_steps(copy: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                  lam: float) -> torch.Tensor:
    """``x + lam * sign(d copy(x)[y] / dx)``, clipped to [0, 1]: (N, 1, 28, 28)."""
    x = x.clone().requires_grad_(True)
    out = copy(x).gather(1, y[:, None]).sum()
    (grad,) = torch.autograd.grad(out, x)
    return (x + lam * grad.sign()).clamp(0, 1).detach()


def jacobian(seeds: torch.Tensor, label_of: Labeller, n: int, seed: int, *,
             lam: float = 0.1, steps: int = 200) -> torch.Tensor:
    """The first ``n`` queries of a Jacobian-augmentation attack from ``seeds``.

    The seeds are queried first; each round trains a fresh local copy (``steps`` Adam
    steps) on every point queried so far and their answers, and queries one signed
    step from each point. Returns the queries in the order they were sent.
    """
    queries = seeds.clone()
    labels = label_of(queries)
    rnd = 0
    while len(queries) < n:
        copy = fit(queries, labels, arch="wong-small", steps=steps, seed=seed + rnd)
        step = lam if rnd % 2 == 0 else -lam  # Papernot et al.'s periodic step sign
        fresh = _signed_steps(copy, queries, labels, step)[:n - len(queries)]
        labels = torch.cat([labels, label_of(fresh)])
        queries = torch.cat([queries, fresh])
        rnd += 1
    return queries[:n]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500, help="queries per stream")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from bastion import zoo

    victim = zoo.load("mnist-smallcnn-std").eval()

    def label_of(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return victim(x).argmax(1)

    streams = {"benign": benign("test", args.n, args.seed),
               "knockoff": knockoff("test", args.n, args.seed),
               "jacobian": jacobian(benign("val", 50, args.seed), label_of, args.n,
                                    args.seed)}
    for name, x in streams.items():
        print(f"{name}: {tuple(x.shape)}, mean {float(x.mean()):.3f}")


if __name__ == "__main__":
    main()
