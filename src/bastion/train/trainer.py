"""The training loop: one process, or one per device under ``torchrun``.

Each batch: draw this process's indices (a function of seed and epoch), craft the
method's perturbation on the bare model, take the objective's gradient through the
DDP / Opacus wrapper, step the optimiser and the schedules. Every ``checkpoint_every``
batches and at each epoch end rank 0 saves a resumable state; at each epoch end it also
validates, keeps the best checkpoint, and decides (for every rank) whether to stop.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from bastion.common.records import RecordWriter, new_run_id, versions
from bastion.errors import BastionWarning, ConfigError
from bastion.evaluation.progress import progress_bar
from bastion.evaluation.runner import unit_seed
from bastion.threat import ThreatModel
from bastion.train import checkpoint
from bastion.train import data as train_data
from bastion.train.config import TrainConfig
from bastion.train.dist import World, from_main, join, leave
from bastion.train.dp import Private
from bastion.train.integrity import prepare
from bastion.train.losses import CLEAN_METHODS, get_method
from bastion.train.monitor import Monitor, validate
from bastion.train.multi import multi_threat_loss
from bastion.train.outputs import finish, save_weights
from bastion.train.schedules import eps_at, lr_factor
from bastion.zoo.registry import build


def arch_kwargs(arch: str, x: torch.Tensor, num_classes: int) -> dict[str, Any]:
    """Constructor arguments fitting architecture ``arch`` to inputs ``x`` (N, C, H, W)."""
    if arch == "mlp":
        return {"in_features": int(x[0].numel()), "num_classes": num_classes}
    if arch == "cifar-small":  # its fully connected layer follows the image side
        return {"in_channels": int(x.shape[1]), "num_classes": num_classes,
                "size": int(x.shape[-1])}
    return {"in_channels": int(x.shape[1]), "num_classes": num_classes}


def _make_model(cfg: TrainConfig, x: torch.Tensor, kwargs: dict[str, Any]) -> nn.Module:
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    model = build(cfg.model, **kwargs)
    try:
        with torch.no_grad():
            model.eval()(x[:2])
    except RuntimeError as exc:
        raise ConfigError(f"model {cfg.model!r} does not fit {cfg.data} inputs of shape "
                          f"{tuple(x.shape[1:])} ({exc}); cifar-small fits square images "
                          "with a side divisible by 4, mlp any size") from None
    return model.train()


def _optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def train(cfg: TrainConfig, out: Path, *, command: str = "",
          log: Callable[[str], None] = print) -> dict[str, Any] | None:
    """Train per ``cfg`` into folder ``out``; rerunning the same call resumes.

    Returns the final summary (see :func:`bastion.train.outputs.finish`) on rank 0 and
    None on the other ranks. Writes ``out/train.jsonl``, ``out/state.pt``, ``out/best.pt``
    (a zoo-loadable ``state_dict``), ``out/last.pt``, ``out/best.json`` and the card.
    """
    joined_already = torch.distributed.is_available() and torch.distributed.is_initialized()
    world = join(cfg.device)
    try:
        result = _train(cfg, Path(out), world, command, log)
    except BaseException:
        if not joined_already:
            leave(world, wait=False)
        raise
    if not joined_already:  # a sweep keeps one process group for all its runs
        leave(world)
    return result


def _train(cfg: TrainConfig, out: Path, world: World, command: str,
           log: Callable[[str], None]) -> dict[str, Any] | None:
    if cfg.dp and world.distributed:
        raise ConfigError("--dp runs in a single process; drop torchrun or --dp")
    splits = train_data.load_splits(cfg.data, train_n=cfg.train_n, val_n=cfg.val_n,
                                    val_holdout=cfg.val_holdout)
    splits, integrity = prepare(cfg, splits, log if world.main else lambda _: None)
    kwargs = arch_kwargs(cfg.model, splits.x_train, splits.num_classes)
    raw = _make_model(cfg, splits.x_train, kwargs).to(world.device)
    optimizer = _optimizer(cfg, raw)
    n = len(splits.x_train)
    batches = train_data.batches_per_epoch(n, cfg.batch_size, world.size)
    total = cfg.epochs * batches
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(cfg.lr_schedule, s, total, cfg.lr_milestones))
    clean = cfg.method in CLEAN_METHODS
    monitor = Monitor(by="clean_accuracy" if clean else "robust_accuracy",
                      co_drop=None if clean else cfg.co_drop)
    state = from_main(world, checkpoint.load(out, cfg.fingerprint()) if world.main else None)
    pos: dict[str, Any] = {"epoch": 0, "batch": 0, "loss_sum": 0.0, "loss_batches": 0,
                           "stopped": False}
    run_id = new_run_id()
    if state is not None:
        raw.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        monitor = Monitor.from_state(state["monitor"])
        pos, run_id = state["position"], state["run_id"]
        checkpoint.set_rng_state(state["rng"])
    train_model: nn.Module = raw
    private: Private | None = None
    noise_gen = torch.Generator(device=world.device)
    if cfg.dp:
        private = Private(raw, optimizer, n_train=n, batches=batches,
                          noise_multiplier=cfg.dp_noise_multiplier,
                          max_grad_norm=cfg.dp_max_grad_norm, noise_generator=noise_gen)
        if state is not None:
            private.load_state_dict(state["dp"])
        train_model, optimizer = private.model, private.optimizer
    elif world.distributed:
        ids = [world.device.index] if world.device.type == "cuda" else None
        train_model = DistributedDataParallel(raw, device_ids=ids)
    record = RecordWriter(out / "train.jsonl", run_id) if world.main else None
    if record is not None:
        record.write("run" if state is None else "resume", seed=cfg.seed, versions=versions(),
                     params=cfg.to_dict(), command=command, world_size=world.size,
                     position=pos, validation=splits.val_source, train_n=n,
                     integrity=integrity)

    # training seconds of earlier processes of this run, so a resumed run reports the
    # whole run's time (up to its last checkpoint), not only its own
    prior_seconds = float(pos.get("seconds", 0.0))

    def snapshot() -> None:
        if record is None:
            return
        pos["seconds"] = prior_seconds + time.perf_counter() - began
        saved = {"fingerprint": cfg.fingerprint(), "run_id": run_id, "position": dict(pos),
                 "model": raw.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "monitor": monitor.state_dict(),
                 "rng": checkpoint.rng_state(), "config": cfg.to_dict(),
                 "dp": private.state_dict() if private is not None else None}
        path = checkpoint.save(out, saved)
        record.write("checkpoint", path=str(path), epoch=pos["epoch"], batch=pos["batch"])

    perturb, objective = get_method(cfg.method)
    settings = cfg.losses
    local_bs = train_data.local_batch_size(cfg.batch_size, world.size)
    hooks_off = private.hooks_off if private is not None else contextlib.nullcontext
    remaining = 0 if pos["stopped"] else total - (pos["epoch"] * batches + pos["batch"])
    began = time.perf_counter()
    with progress_bar(cfg.progress and world.main, total=remaining, label="training") as advance:
        while not pos["stopped"] and pos["epoch"] < cfg.epochs:
            epoch = pos["epoch"]
            order = torch.tensor(train_data.epoch_order(n, seed=cfg.seed, epoch=epoch,
                                                        rank=world.rank, world=world.size))
            raw.train()
            for b in range(pos["batch"], batches):
                # Reseeding per batch makes dropout and attack starts a function of
                # (seed, epoch, batch, rank): resuming needs no generator positions.
                torch.manual_seed(unit_seed(cfg.seed, epoch, b, world.rank))
                gen = torch.Generator(device=world.device)
                gen.manual_seed(unit_seed(cfg.seed, epoch, b, world.rank, 1))
                noise_gen.manual_seed(unit_seed(cfg.seed, epoch, b, world.rank, 2))
                if private is not None:
                    sampler = torch.Generator().manual_seed(unit_seed(cfg.seed, epoch, b, 3))
                    idx = train_data.poisson_batch(n, private.sample_rate, sampler)
                else:
                    idx = order[b * local_bs:(b + 1) * local_bs]
                threats = [ThreatModel(norm, eps_at(eps, cfg.eps_ramp_epochs, epoch, b, batches))
                           for norm, eps in ((cfg.norm, cfg.eps), *cfg.also)]
                if idx.numel() == 0 and private is not None:
                    private.account_empty_step()
                else:
                    x = splits.x_train[idx].to(world.device)
                    y = splits.y_train[idx].to(world.device)
                    loss = multi_threat_loss(perturb, objective, raw, train_model, x, y,
                                             threats, gen, settings, cfg.combine, hooks_off)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    pos["loss_sum"] += float(loss.item())
                    pos["loss_batches"] += 1
                scheduler.step()
                pos["batch"] = b + 1
                advance(f"epoch {epoch + 1}/{cfg.epochs} eps={threats[0].eps:.3f}")
                if (b + 1) % cfg.checkpoint_every == 0 and b + 1 < batches:
                    snapshot()
            _end_epoch(cfg, out, world, raw, splits, monitor, private, pos, record,
                       lr=float(scheduler.get_last_lr()[0]), log=log)
            snapshot()
    if record is None:
        return None
    return finish(cfg, out, raw, monitor, record, run_id=run_id, command=command,
                  arch_kwargs=kwargs, dp_epsilon=_epsilon(cfg, private),
                  seconds=prior_seconds + time.perf_counter() - began, log=log,
                  integrity=integrity)


def _epsilon(cfg: TrainConfig, private: Private | None) -> float | None:
    return private.epsilon(cfg.dp_delta) if private is not None else None


def _end_epoch(cfg: TrainConfig, out: Path, world: World, raw: nn.Module,
               splits: train_data.Splits, monitor: Monitor, private: Private | None,
               pos: dict[str, Any], record: RecordWriter | None, *, lr: float,
               log: Callable[[str], None]) -> None:
    """Validate (rank 0), keep the best weights, log the epoch, agree on stopping."""
    epoch = pos["epoch"]
    collapsed = False
    if world.main and record is not None:
        with private.hooks_off() if private is not None else contextlib.nullcontext():
            scores = validate(raw, splits.x_val, splits.y_val, ThreatModel(cfg.norm, cfg.eps),
                              steps=cfg.val_steps, seed=cfg.seed)
        improved, collapsed = monitor.update(epoch, scores)
        if improved:
            save_weights(raw, out / "best.pt")
        mean_loss = pos["loss_sum"] / max(1, pos["loss_batches"])
        record.write("epoch", epoch=epoch, train_loss=mean_loss, lr=lr, val=scores,
                     best_epoch=monitor.best_epoch, dp_epsilon=_epsilon(cfg, private),
                     dp_delta=cfg.dp_delta if cfg.dp else None)
        log(f"epoch {epoch + 1}/{cfg.epochs}: loss {mean_loss:.4f}, val clean "
            f"{scores['clean_accuracy']:.1%}, robust {scores['robust_accuracy']:.1%}"
            + (f", DP epsilon {_epsilon(cfg, private):.3f}" if private is not None else ""))
        if collapsed:
            message = (
                f"catastrophic overfitting at epoch {epoch + 1}: robust validation accuracy "
                f"fell to {scores['robust_accuracy']:.1%} (best {monitor.best_robust:.1%}) "
                f"while clean accuracy is {scores['clean_accuracy']:.1%}. Training stops; "
                f"the best checkpoint (epoch {monitor.best_epoch + 1}) is kept. Use a smaller "
                "--fgsm-alpha, a smaller lr, or --method pgd")
            warnings.warn(message, BastionWarning, stacklevel=2)
            record.write("catastrophic_overfitting", epoch=epoch, val=scores,
                         best_epoch=monitor.best_epoch, message=message)
    pos.update(epoch=epoch + 1, batch=0, loss_sum=0.0, loss_batches=0)
    pos["stopped"] = bool(from_main(world, collapsed))
