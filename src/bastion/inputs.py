"""The user's own data and input normalisation, shared by every command that takes
``--data`` and ``--model`` (evaluate, diagnose, certify): ``--resize``, ``--classes``,
``--data-root``, ``--mean`` and ``--std`` (docs/data.md).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:  # the command line imports this module; torch loads only when used
    from torch import nn

    from bastion.data.base import Dataset

ResizeOpt = Annotated[str | None, typer.Option(help="H or H,W: resize your images")]
ClassesOpt = Annotated[int | None, typer.Option(help="number of classes in your data")]
DataRootOpt = Annotated[Path | None, typer.Option(help="folder for torchvision:NAME data")]
MeanOpt = Annotated[str | None, typer.Option(
    help="per-channel mean the model expects (e.g. 0.4914,0.4822,0.4465); bastion applies "
         "it inside the model, so eps stays in [0, 1] pixel units")]
StdOpt = Annotated[str | None, typer.Option(help="per-channel std, with --mean")]
MODEL_HELP = ("zoo name, FILE.py[:factory], package.module:factory, a TorchScript or "
              "torch.export (.pt2) file, or robustbench:DATASET/THREAT/NAME (docs/models.md)")
CheckpointOpt = Annotated[Path | None, typer.Option(
    "--checkpoint", "--weights",
    help="state_dict file loaded into a FILE.py or package.module:factory model")]
DeviceOpt = Annotated[str, typer.Option(
    help="cpu, cuda, cuda:N, mps or auto (cuda when there is a GPU); under torchrun cuda "
         "means cuda:LOCAL_RANK")]
DATA_HELP = ("data set name, FILE.npz|.pt, image FOLDER, torchvision:NAME or hf:NAME "
             "(docs/data.md)")


@dataclass(frozen=True)
class UserInputs:
    """How to read the user's data and what normalisation the model expects.

    Attributes:
        resize: (H, W) pixels for the user's images, or None to keep their size.
        classes: number of classes (labels must lie in [0, classes)), None: max label + 1.
        data_root: folder of a ``torchvision:NAME`` data set.
        mean, std: per-channel normalisation put inside the model; empty for none.
    """

    resize: tuple[int, int] | None = None
    classes: int | None = None
    data_root: Path | None = None
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    @classmethod
    def parse(cls, *, resize: str | None = None, classes: int | None = None,
              data_root: Path | None = None, mean: str | None = None,
              std: str | None = None) -> UserInputs:
        """From the command-line strings; ConfigError on a malformed value."""
        from bastion.data.checks import parse_resize
        from bastion.zoo.normalize import parse_floats

        return cls(resize=parse_resize(resize), classes=classes, data_root=data_root,
                   mean=parse_floats(mean, "--mean"), std=parse_floats(std, "--std"))

    def load(self, name: str, split: str, n: int | None) -> Dataset:
        """The data set, with each conversion made while loading told on stderr."""
        from bastion import data

        dataset = data.load(name, split, n, resize=self.resize, classes=self.classes,
                            root=self.data_root)
        for note in dataset.notes:
            print(f"note: {note}", file=sys.stderr)
        return dataset

    def wrap(self, model: nn.Module, dataset: Dataset) -> nn.Module:
        """``model`` with the normalisation layer first (unchanged when none)."""
        from bastion.zoo.normalize import with_normalization

        return with_normalization(model, self.mean, self.std,
                                  channels=int(dataset.x.shape[1]))

    def record(self) -> dict[str, Any]:
        """Extra ``model`` record entries: the normalisation, when one was applied."""
        from bastion.zoo.normalize import normalization_record

        return normalization_record(self.mean, self.std)


def data_record(dataset: Dataset) -> dict[str, Any]:
    """The ``data`` entry of a record."""
    return {"name": dataset.name, "split": dataset.split, "n": len(dataset),
            "source": dataset.source, "notes": list(dataset.notes)}


def inputs_from_command_line(**options: Any) -> UserInputs:
    """:meth:`UserInputs.parse`, or the error on stderr and exit status 2."""
    from bastion.errors import BastionError

    try:
        return UserInputs.parse(**options)
    except BastionError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def no_user_inputs(inputs: UserInputs, option: str) -> None:
    """Exit with status 2 when ``option`` cannot honour the user-data options given."""
    if inputs != UserInputs():
        typer.echo(f"error: {option} runs on the data as it loads; drop --resize, --classes, "
                   f"--data-root, --mean and --std (or drop {option})", err=True)
        raise typer.Exit(2)
