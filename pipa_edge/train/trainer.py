"""The training loop: ``train(cfg, resume=False) -> TrainResult`` (the twin of ``pipa-edge train``).

Per iteration: next source (and target) batch → ``method.training_step`` under autocast → one
``backward()`` (through the GradScaler) → optional grad clipping → optimiser and scheduler step →
``method.after_optimizer_step``. Every ``ckpt_interval`` iterations ``last.pt`` is written
atomically with the full training state; ``resume=True`` continues from it bit-exactly (on CPU;
on GPU up to non-deterministic kernels). Under ``torchrun`` the method runs inside
DistributedDataParallel and each rank reads its own shard of every epoch.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from pipa_edge.config import dump_config
from pipa_edge.errors import ConfigError, ModelFileError, WriteError
from pipa_edge.fileio import guard_write, remove_folder_of, write_error, write_text
from pipa_edge.log import next_command, ok, progress, stage, warn
from pipa_edge.train import dist as dist_utils
from pipa_edge.train.build import build_datasets, build_model_and_method, in_model_classes, seed_everything
from pipa_edge.train.checkpoint import capture_rng, load_train_state, restore_method, restore_rng, save_train_state
from pipa_edge.train.config import TrainConfig
from pipa_edge.train.data import BatchStream, strip_names, to_device
from pipa_edge.train.optim import WarmupPoly, build_optimizer, build_scheduler
from pipa_edge.train.scalars import ScalarWriter
from pipa_edge.threads import describe as describe_threads
from pipa_edge.threads import set_threads


@dataclass
class TrainResult:
    checkpoint: Path  # final.pt (plain segmenter + metrics); load with load_segmenter
    last: Path  # last.pt (full training state)
    iterations: int
    metrics: dict = field(default_factory=dict)  # {val_name: summary} of the final evaluation
    out_dir: Path = Path(".")
    ranks_in_sync: bool = True
    segmenter: object = field(default=None, repr=False)  # the trained Segmenter (in memory, train device)


class _Step(nn.Module):
    """Routes DDP's forward to ``method.training_step`` so gradients are all-reduced."""

    def __init__(self, method: nn.Module):
        super().__init__()
        self.method = method

    def forward(self, batch: dict, it: int):
        return self.method.training_step(batch, it)


class Trainer:
    """One training run: :meth:`setup` builds data, model, optimiser and streams; :meth:`run` trains.

    Diagnostics (``bench/``) use ``setup()``, ``method`` and :meth:`batches` without :meth:`run`."""

    def __init__(self, cfg: TrainConfig, resume: bool):
        self.cfg, self.resume = cfg, resume
        self.info = dist_utils.setup(cfg.device)
        self.device = self.info.device
        self.out = cfg.out_path
        self.last_path, self.final_path = self.out / "last.pt", self.out / "final.pt"
        self.amp = bool(cfg.amp and self.device.type == "cuda")

    def _source_order(self):
        """Rare-class sampling of source images (``source_sampling.kind: rare_class``), else None."""
        sc = self.cfg.source_sampling
        if sc.kind != "rare_class":
            return None
        from pipa_edge.adapt.rcs import RareClassSampler

        base = getattr(self.source, "dataset", self.source)  # class counts from the stored labels
        cache = sc.cache or str(self.out / "rcs_counts.json")
        rcs = RareClassSampler(base, self.source.classes.num_classes, sc.temperature, sc.min_pixels,
                               num_samples=len(self.source), seed=self.cfg.seed, cache=cache)
        if self.info.is_main:
            names = self.source.classes.names
            top = sorted(zip(rcs.probs, names), reverse=True)[:5]
            stage("train", "rare-class sampling of source images (T "
                      f"{sc.temperature}): P(c) " + ", ".join(f"{n} {p:.2f}" for p, n in top) + " …")
        return rcs.epoch_indices

    def setup(self) -> None:
        cfg, info = self.cfg, self.info
        if self.resume and not self.last_path.is_file():
            raise ConfigError(f"{self.last_path}: nothing to resume (no last.pt in out_dir '{cfg.out_dir}')")
        set_threads(cfg.threads, where="key 'threads'")
        self.created_out = not self.out.exists()  # a failed start removes what it made (see train())
        torch.backends.cudnn.benchmark = cfg.cudnn_benchmark
        torch.backends.cudnn.deterministic = not cfg.cudnn_benchmark
        seed_everything(cfg.seed)  # identical model init on every rank
        self.source, self.target, self.val = build_datasets(cfg)
        self.method = build_model_and_method(cfg, self.device)
        self.method.train()
        self.opt = build_optimizer(self.method, cfg.optim)
        self.sched = build_scheduler(self.opt, cfg.optim)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp)
        self.start_it = 0
        self.metrics: dict = {}
        seed_everything(cfg.seed + info.rank)  # per-rank randomness inside the method (mixing, dropout)
        if self.resume:
            self._load(self.last_path)
        if info.is_main:
            with guard_write(self.out, "nothing was written"):
                self.out.mkdir(parents=True, exist_ok=True)
        from pipa_edge.train.method import configure_loss  # loss.class_weights from the source labels
        configure_loss(self.method, cfg, self.source, self.out)
        self.src_stream = BatchStream(self.source, cfg.batch_size, cfg.seed, info.rank, info.world,
                                      cfg.num_workers, stream=0, name=f"source {cfg.source.root}",
                                      pin_memory=self.device.type == "cuda", order_fn=self._source_order())
        self.tgt_stream = None
        if self.target is not None:
            self.tgt_stream = BatchStream(self.target, cfg.batch_size, cfg.seed, info.rank, info.world,
                                          cfg.num_workers, stream=1, name=f"target {cfg.target.root}",
                                          pin_memory=self.device.type == "cuda")
        if info.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            if cfg.sync_bn and self.device.type == "cuda":  # SyncBatchNorm has no CPU kernel; the
                # converted modules reuse the same Parameter objects, so the optimiser stays valid
                self.method = nn.SyncBatchNorm.convert_sync_batchnorm(self.method)
            self.step_module = DDP(_Step(self.method), device_ids=ids, find_unused_parameters=cfg.ddp_find_unused)
        else:
            self.step_module = _Step(self.method)
        self.writer = ScalarWriter(self.out, resume_from=self.start_it if self.resume else None,
                                   enabled=info.is_main)
        if info.is_main:  # last: a run that fails to start leaves no config.yaml behind
            write_text(self.out / "config.yaml", dump_config(cfg))

    def _load(self, path: Path) -> None:
        ck = load_train_state(path)
        restore_method(self.method, ck, str(path))
        try:
            self.opt.load_state_dict(ck["optimizer"])
            self.sched.load_state_dict(ck["scheduler"])
        except (ValueError, KeyError) as e:
            raise ModelFileError(f"{path}: optimiser state does not fit this config ({e})") from None
        self.sched.lr_lambdas[0] = WarmupPoly(self.cfg.optim)  # the schedule follows the current config
        if ck.get("scaler"):
            self.scaler.load_state_dict(ck["scaler"])
        ranks = ck.get("rng_ranks")
        if ck.get("world_size", 1) != self.info.world:
            warn("train", f"resuming a {ck.get('world_size')}-process run with {self.info.world}: the data order "
                          "and random streams differ from the original run")
            seed_everything(self.cfg.seed + self.info.rank + 1_000_003 * int(ck["iteration"]))
        else:
            restore_rng(ranks[self.info.rank] if ranks else ck["rng"])
        self.start_it = int(ck["iteration"])
        self.metrics = ck.get("metrics") or {}
        old = ck.get("config") or {}
        now = self.cfg.model_dump(mode="json")
        changed = [k for k in ("model", "source", "target", "transform", "target_transform", "method", "adapt",
                               "batch_size", "seed") if k in old and old[k] != now[k]]
        if changed:
            warn("train", f"resuming with a changed config ({', '.join(changed)}): the run will not match an "
                          "uninterrupted one")
        stage("train", f"resumed from {path} at iteration {self.start_it}")

    def _data_state(self, it: int) -> dict:
        return {"source": list(self.src_stream.position(it)),
                "target": list(self.tgt_stream.position(it)) if self.tgt_stream else None}

    def _save(self, it: int) -> None:
        """Collective under DDP (every rank's RNG state is gathered); rank 0 writes ``last.pt``."""
        rng_ranks = None
        if self.info.distributed:
            import torch.distributed as dist

            rng_ranks = [None] * self.info.world
            dist.all_gather_object(rng_ranks, capture_rng())
        if not self.info.is_main:
            return
        kept = (f"the previous {self.last_path.name} is kept" if self.last_path.exists() else "no checkpoint was "
                f"written") + f"; training stopped at iteration {it}: free space, then rerun with --resume"
        with guard_write(self.last_path, kept):
            self._write_state(it, rng_ranks)

    def _write_state(self, it: int, rng_ranks) -> None:
        save_train_state(self.last_path, method=self.method, optimizer=self.opt, scheduler=self.sched,
                         scaler=self.scaler, iteration=it, data=self._data_state(it), world_size=self.info.world,
                         config=self.cfg.model_dump(mode="json"), metrics=self.metrics, rng_ranks=rng_ranks)

    def _evaluate(self, it: int) -> None:
        from pipa_edge.train.evaluate import evaluate

        if self.info.is_main and self.val:
            for name, ds in self.val.items():
                s = evaluate(self.method.segmenter, ds, self.cfg.eval, self.device, self.cfg.num_workers,
                             amp=self.amp, desc=f"val {name}", show_progress=False)
                self.metrics[name] = {k: s[k] for k in ("miou", "pixel_acc", "mean_acc", "per_class_iou", "images")}
                self.metrics[name]["iteration"] = it
                self.writer.add(it, {f"val/{name}/miou": s["miou"] or 0.0,
                                     f"val/{name}/pixel_acc": s["pixel_acc"] or 0.0})
                miou = "n/a" if s["miou"] is None else f"{100 * s['miou']:.2f}"
                stage("val", f"it {it}: {name} mIoU {miou}  pixel acc {100 * (s['pixel_acc'] or 0):.2f}")
        dist_utils.barrier(self.info)

    def _precise_bn(self) -> None:
        """``cfg.precise_bn``: BN statistics of the final weights on whole eval-size images (same on every rank;
        a seed-0 image subset whatever the run's seed, so that runs are re-estimated on the same images)."""
        from pipa_edge.data.build import build_eval_dataset
        from pipa_edge.train.precise_bn import ImageSizeMismatch, precise_bn_images, recompute_bn_stats

        pb, cfg = self.cfg.precise_bn, self.cfg
        dcfg = cfg.target if pb.images == "target" else cfg.source
        dcfg = in_model_classes(dcfg, cfg.model.classes).model_copy(
            update={"labels": False, "pair_offset": None, "flow": "none"})
        ds = build_eval_dataset(dcfg)
        try:
            used = recompute_bn_stats(self.method.segmenter,
                                      precise_bn_images(ds, pb.num_images, pb.batch_size, self.device))
        except ImageSizeMismatch:
            raise ConfigError(f"key 'precise_bn': {pb.images} images {dcfg.root} differ in size; set "
                              f"'{pb.images}.resize' so whole images can be batched") from None
        if self.info.is_main:
            if used:
                stage("train", f"precise BN: statistics re-estimated on {min(pb.num_images, len(ds))} whole "
                               f"{pb.images} images ({used} batches of <= {pb.batch_size})")
            else:
                warn("train", f"precise BN: fewer than {pb.batch_size} {pb.images} images; statistics unchanged")

    def batches(self):
        """Endless batches ``{"source": ..., ["target": ...]}`` on the run's device, from ``start_it`` on."""
        src = self.src_stream.batches(self.start_it)
        tgt = self.tgt_stream.batches(self.start_it) if self.tgt_stream else None
        while True:
            batch = {"source": strip_names(next(src))}
            if tgt is not None:
                t = strip_names(next(tgt))
                t.pop("label", None)
                batch["target"] = t
            yield to_device(batch, self.device)

    def run(self) -> TrainResult:
        cfg, info = self.cfg, self.info
        max_it = cfg.optim.max_iters
        if info.is_main:
            n_t = f", target {len(self.target)} images" if self.target is not None else ""
            stage("train", f"{cfg.method} · {cfg.model.arch} ({cfg.model.classes}) on {self.device}"
                           f"{f' × {info.world} processes' if info.distributed else ''} · source "
                           f"{len(self.source)} images{n_t} · {max_it} iterations · batch {cfg.batch_size}"
                           f"{' · AMP' if self.amp else ''}"
                           f"{f' · {describe_threads()}' if self.device.type == 'cpu' else ''}")
            if not self.writer.tensorboard:
                stage("train", f"scalars → {self.writer.path} (TensorBoard not installed: CSV only)")
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.amp else nullcontext()
        params = [p for g in self.opt.param_groups for p in g["params"]]
        batches = self.batches()
        acc: dict[str, float] = {}
        n_acc, t0 = 0, time.perf_counter()
        with progress("train", total=max_it, disable=not info.is_main) as bar:
            bar.advance(self.start_it)
            for it in range(self.start_it, max_it):
                batch = next(batches)
                with autocast:
                    loss, logs = self.step_module(batch, it)
                if not torch.isfinite(loss.detach()):
                    raise FloatingPointError(f"loss is {float(loss)} at iteration {it} (lower optim.lr or set "
                                             "optim.grad_clip)")
                self.scaler.scale(loss).backward()
                if cfg.optim.grad_clip:
                    self.scaler.unscale_(self.opt)
                    torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
                self.scaler.step(self.opt)
                self.scaler.update()
                self.opt.zero_grad(set_to_none=True)
                self.sched.step()
                self.method.after_optimizer_step(it)
                done = it + 1
                lv = float(loss.detach())
                for k, v in {**logs, "loss": lv}.items():  # adapters log "loss" too: count it once
                    acc[k] = acc.get(k, 0.0) + float(v)
                n_acc += 1
                lr = self.opt.param_groups[0]["lr"]
                bar.advance(1, info=f"loss {lv:.3f} lr {lr:.2e}")
                if done % cfg.log_interval == 0 or done == max_it:
                    dt = (time.perf_counter() - t0) / n_acc
                    row = {f"train/{k}": v / n_acc for k, v in acc.items()}
                    row.update({f"lr/{g.get('name', i)}": g["lr"] for i, g in enumerate(self.opt.param_groups)})
                    row["time/iter_s"] = dt
                    self.writer.add(done, row)
                    acc, n_acc, t0 = {}, 0, time.perf_counter()
                if done == max_it and cfg.precise_bn.enabled:
                    self._precise_bn()
                if self.val and ((cfg.eval_interval and done % cfg.eval_interval == 0) or done == max_it):
                    self._evaluate(done)
                if done % cfg.ckpt_interval == 0 or done == max_it:
                    self._save(done)
        if self.start_it >= max_it and self.val and not self.metrics:
            self._evaluate(max_it)
        dist_utils.broadcast_buffers(info, self.method)  # BN running stats: rank 0's, as in last.pt
        in_sync = dist_utils.ranks_in_sync(info, self.method)
        if not in_sync:
            warn("train", "DDP ranks ended with different weights")
        if info.is_main:
            from pipa_edge.models.input_size import size_fields
            from pipa_edge.models.io import save_segmenter
            from pipa_edge.train.checkpoint import train_next_command

            save_segmenter(self.final_path, self.method.segmenter, kind="final", iteration=max_it,
                           metrics=self.metrics, config=cfg.model_dump(mode="json"), method=cfg.method,
                           **size_fields(cfg))
            self.writer.close()
            ok("train", f"done: {self.final_path} (full state: {self.last_path})")
            next_command(train_next_command(self.final_path, cfg))  # eval at the model's size (--imgsz)
        dist_utils.barrier(info)
        return TrainResult(self.final_path, self.last_path, max_it, dict(self.metrics), self.out, in_sync,
                           self.method.segmenter)


def train(cfg: TrainConfig, resume: bool = False) -> TrainResult:
    """Train ``cfg.method`` on ``cfg.source`` (+ ``cfg.target``); see the module docstring."""
    t = Trainer(cfg, resume)
    try:
        try:
            t.setup()
        except BaseException:
            if getattr(t, "created_out", False):  # a failed start leaves no folder of caches behind
                remove_folder_of(t.out, ("scalars.csv", "rcs_counts.json"))
            raise
        return t.run()
    except WriteError:
        raise
    except BaseException as e:  # a full disk / read-only folder anywhere else (scalars, final.pt): one line
        err = write_error(t.out, e, kept=f"checkpoints so far are in {t.out}")
        if err is None:
            raise
        raise err from None
    finally:
        dist_utils.teardown(t.info)

