"""Benchmark: which BatchNorm statistics does an adapted checkpoint's score depend on?

    python bench/bn_scale.py --bench video --ckpt NAME=runs/video/mt_tbn05_s0/final.pt [--ckpt ...] \
        [--json docs/results/bn_scale.json]
    python bench/bn_scale.py --bench camvid --data ../shared/data/camvid --ckpt NAME=PATH ... --json ...

Both benchmarks train on crops and score whole frames: ``video`` (``bench/video_adapt.py``: 128×128
crops, whole 128×256 synthetic frames, ``real_seq`` of ``--eval`` = unseen sequences) and ``camvid``
(``bench/camvid_adapt.py``: 160×224 crops, whole 180×240 ``dusk_train`` frames). For each checkpoint
the weights stay fixed and only the BatchNorm running statistics are re-estimated (cumulative
average over unlabelled images, training-mode no-grad forwards, AdaBN-style), from:

- ``trained``: none (the checkpoint as saved — the number the adaptation benchmark reports),
- ``tgt_whole``: the target training images whole, at the evaluation size
  (video: ``real_seq`` of ``--data``; camvid: ``dusk_train`` images, the adaptation set),
- ``tgt_crop``: the same images as random crops of the training crop size (``--crop``),
- ``tgt_half``: the same images whole at half size (what the extra half-size target forward of the
  ``mt_tbn05`` runs in docs/benchmarks.md saw),
- ``src_whole``: the labelled source images whole, at the evaluation size (domain control).

If the ``tgt_whole`` column lifts every checkpoint to the same level, the gap between checkpoints
was statistics, not what the weights learnt. Prints a table; writes JSON, adding to an existing file of
the same setting (a checkpoint name given again replaces its row).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from lib_cli_args import named_checkpoint  # noqa: E402
from lib_results_json import SettingMismatch, open_results, write_results  # noqa: E402

MODES = ("trained", "tgt_whole", "tgt_crop", "tgt_half", "src_whole")


DEFAULTS = {"video": {"data": "runs/video/synth", "eval": "runs/video/synth_eval", "crop": [128, 128], "batch": 4},
            "camvid": {"data": str(REPO.parent / "shared/data/camvid"), "eval": None, "crop": [160, 224], "batch": 8}}


def video_setup(data: Path, eval_root: Path):
    """Target / source images (uint8 NCHW) and a scorer, for the synthetic video benchmark."""
    import torch

    from pipa_edge.data.synth.dataset import SynthDataset
    from pipa_edge.train.video_eval import evaluate_sequences

    def frames(root, split):
        ds = SynthDataset(root, split)
        return torch.from_numpy(np.stack([np.ascontiguousarray(ds[i]["image"]) for i in range(len(ds))])).permute(0, 3, 1, 2)

    def score(model):
        ds = SynthDataset(eval_root, "real_seq", classes=model.classes)
        return evaluate_sequences(model, ds, "cpu", flow="none", show_progress=False)["miou"]

    return frames(data, "real_seq"), frames(data, "sim"), score, f"{eval_root} real_seq"


def camvid_setup(data: Path):
    """The same for CamVid day → dusk: dusk_train images (scored with their labels), day_train source."""
    import torch

    from pipa_edge.data.build import build_eval_dataset
    from pipa_edge.train.evaluate import evaluate

    def ds(split):
        return build_eval_dataset({"type": "camvid", "root": str(data), "split": split, "resize": [180, 240]})

    dusk, day = ds("dusk_train"), ds("day_train")

    def images(d):
        return torch.stack([torch.as_tensor(np.ascontiguousarray(d[i]["image"])) for i in range(len(d))])

    def score(model):
        return evaluate(model, dusk, None, "cpu", show_progress=False)["miou"]

    return images(dusk), images(day), score, f"{data} dusk_train (180×240)"


def views(x, mode: str, crop: tuple[int, int], rng: np.random.Generator, per_frame: int = 2):
    """The images (uint8 NCHW tensor in, NCHW tensor out) a recalibration mode sees."""
    import torch
    import torch.nn.functional as F

    if mode in ("tgt_whole", "src_whole"):
        return x
    if mode == "tgt_half":
        H, W = x.shape[-2:]
        return F.interpolate(x.float(), size=(H // 2, W // 2), mode="bilinear", align_corners=False)
    if mode == "tgt_crop":
        H, W = x.shape[-2:]
        ch, cw = crop
        out = []
        for img in x:
            for _ in range(per_frame):
                y0, x0 = int(rng.integers(0, H - ch + 1)), int(rng.integers(0, W - cw + 1))
                out.append(img[:, y0:y0 + ch, x0:x0 + cw])
        return torch.stack(out)
    raise ValueError(mode)


def recalibrate(model, images, batch: int, num_images: int):
    """A copy of ``model`` with BN statistics re-estimated on ``images`` — the same image choice and
    batches as ``precise_bn.enabled: true`` in training (a seed-0 subset of ``num_images``, full batches)."""
    from pipa_edge.train.precise_bn import precise_bn_images, recompute_bn_stats

    m = copy.deepcopy(model)
    items = [{"image": im} for im in images]
    if not recompute_bn_stats(m, precise_bn_images(items, num_images, batch, "cpu")):
        raise SystemExit("error: the model has no BatchNorm layers (or fewer images than --batch); nothing to re-estimate")
    return m.eval()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", choices=tuple(DEFAULTS), default="video")
    ap.add_argument("--ckpt", action="append", required=True, metavar="NAME=PATH", type=named_checkpoint)
    ap.add_argument("--data", default=None, help="video: synth dataset with sim + real_seq (training data); "
                    "camvid: the CamVid root with day_train / dusk_train")
    ap.add_argument("--eval", default=None, help="video: synth dataset whose real_seq is scored")
    ap.add_argument("--crop", type=int, nargs=2, default=None, help="training crop (video 128 128, camvid 160 224)")
    ap.add_argument("--batch", type=int, default=None, help="recalibration batch (the training batch: video 4, camvid 8)")
    ap.add_argument("--num-images", type=int, default=200, help="images per re-estimate (precise_bn.num_images; "
                    "tgt_crop uses two crops per image)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default="docs/results/bn_scale.json")
    args = ap.parse_args()
    import torch

    from pipa_edge.models.io import load_segmenter

    torch.set_num_threads(args.threads)
    for k, v in DEFAULTS[args.bench].items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if not Path(args.data).is_dir():
        print(f"error: --data '{args.data}': not a directory", file=sys.stderr)
        return 2
    ckpts = dict(args.ckpt)
    if args.bench == "video":
        tgt, src, score, scored = video_setup(Path(args.data), Path(args.eval))
    else:
        tgt, src, score, scored = camvid_setup(Path(args.data))
    setting = {"torch": torch.__version__, "bench": args.bench, "data": args.data, "eval": scored, "crop": args.crop,
               "batch": args.batch, "num_images": args.num_images, "target_frames": len(tgt), "source_frames": len(src)}
    try:  # merge only runs of the same setting
        res = open_results(args.json, setting, "python bench/bn_scale.py " + " ".join(sys.argv[1:]))
    except SettingMismatch as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{'checkpoint':28s}" + "".join(f"{m:>11s}" for m in MODES), flush=True)
    t0 = time.time()
    for name, path in ckpts.items():
        model = load_segmenter(path).eval()
        row = {}
        for mode in MODES:
            rng = np.random.default_rng(0)  # the crops' positions
            if mode == "trained":
                m = model
            else:
                imgs = views(src if mode == "src_whole" else tgt, mode, tuple(args.crop), rng)
                m = recalibrate(model, imgs, args.batch, args.num_images * (2 if mode == "tgt_crop" else 1))
            row[mode] = score(m)
        res["results"][name] = {"checkpoint": str(path), "miou": row}
        print(f"{name:28s}" + "".join(f"{100 * row[m]:11.1f}" for m in MODES), flush=True)
    write_results(args.json, res)
    print(f"wrote {args.json} ({time.time() - t0:.0f} s; {len(res['results'])} checkpoints in the file)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
