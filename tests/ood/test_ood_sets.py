"""OOD sets: shapes, seeds, conversions and mismatches."""

from __future__ import annotations

import pytest
import torch

from bastion.errors import ConfigError, InputError
from bastion.ood import load_set, to_shape
from bastion.ood.evaluate import check_sets


def test_noise_sets_are_seeded_and_in_range() -> None:
    a, b = load_set("uniform", 16, seed=3), load_set("uniform", 16, seed=3)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, load_set("uniform", 16, seed=4))
    g = load_set("gaussian", 16)
    assert g.shape == (16, 1, 28, 28) and g.min() >= 0 and g.max() <= 1


def test_to_shape_grey_scales_and_resizes() -> None:
    rgb = torch.zeros(2, 3, 32, 32)
    rgb[:, 1] = 1.0  # pure green: luma 0.587
    grey = to_shape(rgb, (1, 28, 28))
    assert grey.shape == (2, 1, 28, 28)
    torch.testing.assert_close(grey, torch.full_like(grey, 0.587))
    assert to_shape(grey, (3, 28, 28)).shape == (2, 3, 28, 28)
    with pytest.raises(InputError, match="channels"):
        to_shape(torch.zeros(1, 2, 4, 4), (3, 4, 4))


def test_unknown_set_and_mismatched_sets_are_refused() -> None:
    with pytest.raises(ConfigError, match="available"):
        load_set("imagenet-full")
    with pytest.raises(InputError, match="channels, height, width"):
        check_sets(torch.zeros(2, 1, 28, 28), {"cifar": torch.zeros(2, 3, 32, 32)})
    with pytest.raises(ConfigError, match="at least one"):
        check_sets(torch.zeros(2, 1, 28, 28), {})


@pytest.mark.slow
def test_near_ood_sets_transform_mnist_digits() -> None:
    inverted = load_set("mnist-invert", 8)
    blurred = load_set("mnist-blur", 8)
    rotated = load_set("mnist-rot90", 8)
    assert inverted.mean() > 0.7  # digits are mostly black background
    assert blurred.shape == rotated.shape == (8, 1, 28, 28)
    torch.testing.assert_close(1 - inverted, torch.rot90(rotated, -1, dims=(2, 3)))

def test_natural_photos_leave_out_the_id_data_sets_own_source() -> None:
    from bastion import data

    everything = load_set("natural", 100, shape=(3, 32, 32))
    for_cifar = load_set("natural", 100, shape=(3, 32, 32), id_name="cifar10-sample")
    assert len(everything) == 60 and len(for_cifar) == 40
    cifar_photos = data.load("cifar10-sample", "test").x
    # no CIFAR-10 sample photo survives in the OOD set of a CIFAR-10 model
    distances = torch.cdist(for_cifar.flatten(1), cifar_photos.flatten(1))
    assert distances.min() > 1.0
    assert torch.cdist(everything.flatten(1), cifar_photos.flatten(1)).min() < 1e-3
    # kept in colour for a colour model
    assert (for_cifar[:, 0] - for_cifar[:, 1]).abs().max() > 0.05


def test_a_set_that_is_the_id_data_set_is_refused() -> None:
    with pytest.raises(ConfigError, match="in-distribution data set itself"):
        load_set("fashion-mnist", 10, id_name="fashion-mnist")
