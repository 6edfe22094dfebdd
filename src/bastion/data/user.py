"""Data a user brings: ``--data`` as a file, an image folder, ``torchvision:NAME`` or
``hf:NAME`` (docs/data.md).

=====================  =====================================================
``--data``             what it reads
=====================  =====================================================
``FILE.npz``           arrays ``x`` (images) and ``y`` (labels)
``FILE.pt``            a dict ``{"x": tensor, "y": tensor}`` (torch.save)
``FOLDER/``            one sub-folder per class of image files, or
                       ``FOLDER/SPLIT/CLASS/`` with SPLIT one of train, val, test
``torchvision:NAME``   ``torchvision.datasets.NAME`` under ``--data-root``
``hf:NAME``            Hugging Face ``datasets.load_dataset(NAME, split=SPLIT)``
=====================  =====================================================

All go through :mod:`bastion.data.checks`: NHWC and 0-255 integers are converted with
a note; floats outside [0, 1], NaN and labels outside ``--classes`` are refused.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bastion.data import checks
from bastion.data.base import Dataset
from bastion.errors import ConfigError, InputError, MissingDependencyError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
PREFIXES = ("torchvision:", "hf:")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DataOptions:
    """How to read user data: ``resize`` (H, W) pixels, ``classes`` count, ``root``
    folder for torchvision data sets."""

    resize: tuple[int, int] | None = None
    classes: int | None = None
    root: Path | None = None


def is_user_data(name: str) -> bool:
    """Does ``--data`` name a file, folder or external data set rather than a built-in?"""
    return (name.endswith((".npz", ".pt")) or name.startswith(PREFIXES)
            or Path(name).is_dir())


def load(name: str, split: str, n: int | None, options: DataOptions) -> Dataset:
    """The data set ``name`` names (see the table above), checked and converted."""
    notes: list[str] = []
    if name.startswith("torchvision:"):
        x, y, names = _torchvision(name.partition(":")[2], split, options.root, n)
    elif name.startswith("hf:"):
        x, y, names = _huggingface(name.partition(":")[2], split, n)
    elif Path(name).is_dir():
        return _folder(Path(name), split, n, options)
    else:
        (x, y), names = _file(Path(name)), None
    images, labels, count = checks.checked(x[:n], y[:n], where=name, classes=options.classes,
                                           notes=notes)
    classes = tuple(names) if names is not None and len(names) == count else \
        tuple(str(i) for i in range(count))
    return Dataset(checks.resize(images, options.resize), labels, name, split, classes,
                   name, tuple(notes))


def _file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise ConfigError(f"data file {path} does not exist")
    if path.suffix == ".npz":
        with np.load(path) as f:
            if "x" not in f.files or "y" not in f.files:
                raise InputError(f"{path} holds {f.files}; it needs arrays x (images) and "
                                 "y (labels): np.savez(FILE, x=images, y=labels)")
            return f["x"], f["y"]
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for files it cannot unpickle
        raise InputError(f"{path} is not a torch.save file of tensors ({exc}); save "
                         "{'x': images, 'y': labels}") from None
    if not isinstance(blob, dict) or "x" not in blob or "y" not in blob:
        raise InputError(f"{path} must hold a dict with tensors 'x' (images) and 'y' "
                         "(labels): torch.save({'x': x, 'y': y}, FILE)")
    return torch.as_tensor(blob["x"]).numpy(), torch.as_tensor(blob["y"]).numpy()


def _folder(root: Path, split: str, n: int | None, options: DataOptions) -> Dataset:
    """Images in ``root/[SPLIT/]CLASS/*``; classes are the sub-folders in sorted order."""
    if not root.is_dir():
        raise ConfigError(f"data folder {root} does not exist")
    splits = sorted(s for s in SPLITS if (root / s).is_dir())
    if splits and split not in splits:
        raise ConfigError(f"{root} has split folders {', '.join(splits)}, not {split!r}; "
                          "pick one with --split")
    base = root / split if splits else root
    names = sorted(p.name for p in base.iterdir() if p.is_dir())
    per_class = [[p for p in sorted((base / c).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
                 for c in names]
    # classes dealt in turn (first file of each class, then the second...), so the first
    # n images of --n span every class rather than the first few
    dealt = sorted((rank, label, p) for label, paths in enumerate(per_class)
                   for rank, p in enumerate(paths))
    files = [(p, label) for _, label, p in dealt][:n]
    if not files:
        raise InputError(f"{base} holds no images in class sub-folders; lay it out as "
                         f"{base}/CLASS_NAME/IMAGE.png")
    gray = all(_mode(p) in ("L", "1", "I;16") for p, _ in files)  # header reads only
    arrays = [_read_image(p, "L" if gray else "RGB", options.resize) for p, _ in files]
    sizes = {a.shape[:2] for a in arrays}
    if len(sizes) > 1:
        raise InputError(f"{base}: images have {len(sizes)} different sizes (e.g. "
                         f"{sorted(sizes)[:3]}); pass --resize H[,W] to bring them to one")
    x = np.stack(arrays)
    notes: list[str] = []
    images, labels, count = checks.checked(
        x[:, None] if x.ndim == 3 else np.transpose(x, (0, 3, 1, 2)),
        np.array([label for _, label in files]), where=str(base), classes=options.classes,
        notes=notes, nchw=True)
    classes = tuple(names) if len(names) == count else tuple(str(i) for i in range(count))
    return Dataset(images, labels, str(root), split, classes, str(base), tuple(notes))


def _mode(path: Path) -> str:
    from PIL import Image

    with Image.open(path) as im:
        return str(im.mode)


def _read_image(path: Path, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 pixels of one image file, resized to ``size`` (H, W)."""
    from PIL import Image

    with Image.open(path) as im:
        converted = im.convert(mode)
    if size is not None:
        converted = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(converted, dtype=np.uint8)


def _import(module: str, install: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(f"--data needs the {module!r} package, which is not "
                                     f"installed; install it with: {install}") from None


def _torchvision(name: str, split: str, root: Path | None,
                 n: int | None) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """``torchvision.datasets.NAME(root, train=...)``, downloaded into ``root`` if absent."""
    datasets = _import("torchvision.datasets", "pip install torchvision")
    cls = getattr(datasets, name, None)
    if cls is None:
        raise ConfigError(f"torchvision.datasets has no data set {name!r}")
    if root is None:
        raise ConfigError(f"torchvision:{name} needs --data-root DIR, the folder it is (or "
                          "will be downloaded) in")
    if split not in ("train", "test"):
        raise ConfigError(f"torchvision:{name} has splits train and test, not {split!r}")
    ds = cls(root=str(root), train=split == "train", download=True)
    names = list(getattr(ds, "classes", [])) or None
    if hasattr(ds, "data") and hasattr(ds, "targets"):
        return np.asarray(ds.data), np.asarray(ds.targets), names
    rows = [ds[i] for i in range(len(ds) if n is None else min(n, len(ds)))]
    return np.stack([np.asarray(im) for im, _ in rows]), np.array([t for _, t in rows]), names


IMAGE_COLUMNS = ("image", "img", "pixel_values")
LABEL_COLUMNS = ("label", "labels", "fine_label")


def _huggingface(name: str, split: str,
                 n: int | None) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """``datasets.load_dataset(NAME, split=SPLIT)``: the first image and label columns."""
    datasets = _import("datasets", "pip install datasets")
    ds = datasets.load_dataset(name, split=split)
    columns = list(ds.column_names)
    image = next((c for c in IMAGE_COLUMNS if c in columns), None)
    label = next((c for c in LABEL_COLUMNS if c in columns), None)
    if image is None or label is None:
        raise InputError(f"hf:{name} has columns {columns}; bastion reads an image column "
                         f"({', '.join(IMAGE_COLUMNS)}) and a label column "
                         f"({', '.join(LABEL_COLUMNS)})")
    rows = ds if n is None else ds.select(range(min(n, len(ds))))
    x = np.stack([np.asarray(row[image]) for row in rows])
    y = np.array([row[label] for row in rows])
    feature = getattr(ds, "features", {}).get(label)
    return x, y, list(getattr(feature, "names", []) or []) or None
