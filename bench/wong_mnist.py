"""Wong, Rice & Kolter's FGSM-trained MNIST network ("Fast is better than free", ICLR 2020).

The architecture of locuslab/fast_adversarial's ``MNIST/mnist_net.py``, written out as a
user model file for ``--model bench/wong_mnist.py --checkpoint FILE`` (its released weights,
``MNIST/models/fgsm.pth``, are a ``state_dict`` of this ``nn.Sequential``; the layer indices
match). Inputs (N, 1, 28, 28) in [0, 1], no normalisation; logits (N, 10).
"""

from __future__ import annotations

import argparse

from torch import nn


def make_model() -> nn.Module:
    """Conv(1,16,4,s2,p1)-ReLU-Conv(16,32,4,s2,p1)-ReLU-Flatten-Linear(1568,100)-ReLU-
    Linear(100,10)."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 4, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 100), nn.ReLU(),
        nn.Linear(100, 10),
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Print Wong et al.'s MNIST architecture "
                                     "(a user model file: give it to --model, its weights "
                                     "to --checkpoint).")
    parser.parse_args()
    print(make_model())
