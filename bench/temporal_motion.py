#!/usr/bin/env python3
"""Motion-compensated temporal smoothing: raw vs EMA vs motion-compensated EMA on labelled sequences.

Each row runs the runtime's own filter (:class:`pipa_edge.runtime.temporal.TemporalFilter`,
defaults alpha 0.5, delta 0.1, 3 frames) on the model's logits **at model resolution** (stride 4),
frame by frame in sequence order; ``mc-ema`` first warps the filter state onto the new frame with
:class:`pipa_edge.runtime.motion.MotionCompensator` (its defaults: DIS medium on grey frames at
the state's size or at least 64 rows, forward-backward check, reset where it fails). Labels are
upsampled (nearest) to the label size and scored: mIoU against the labels, flip rate and TC
(:class:`pipa_edge.train.video_metrics.VideoMeter`: consecutive outputs compared through DIS
*medium* flow on the full frames, occlusions masked — the metric's flow is independent of the
filter's; a Farneback-flow cross-check is reported too).

Sequences: the synthetic ``real_seq`` split (every frame labelled, 25 fps) at the native rate and
sub-sampled every ``--stride`` frames (1 fps: large motion; several start offsets); CamVid's
labelled frames in sequence order (0016E5, 0006R0 day; 0001TP dusk; ~2–9 s apart, see the docs);
the dash-cam clip (no labels: flip rate and TC only). Cost: ONNX Runtime inference (``--threads``)
vs the filter and flow + warp on the same frames, per input size.

On labelled clips two more measures: the **labels themselves** scored as a prediction (the flips
a perfect model has to make: at 1 s spacing most flips are real changes of the scene) and
**flicker**, the flip rate on pixels whose label stays the same through the metric's flow (DIS,
and Farneback as the cross-check; and, flow-free, at the same pixel position: JSON only). ``--variants`` picks the rows; besides the named ones,
``mc-ema:alpha=0.4,fb_beta=0.2,min_height=128`` / ``ema:alpha=0.4`` / ``mc-ema-conf0.9`` are
probes (filter and compensator keyword arguments; a confidence-gated state).

    pipa-edge data synth runs/h4_motion/synth_eval --n-sim 0 --n-real 0 --n-seq 4 --seq-len 125 --size 128 256
    python bench/temporal_motion.py --only synth camvid dashcam --threads 1 \
        --json docs/results/temporal_motion.json     # synth: make demo's model; CamVid: camvid_adapt's source_s1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
SHARED = REPO.parent / "shared" / "data"

import lib_temporal_variants  # noqa: E402
from lib_temporal_variants import VARIANTS, make_filter  # noqa: E402


def model_logits(seg, images: list[np.ndarray], batch: int = 4) -> list[np.ndarray]:
    """Logits at model resolution (stride 4) for each uint8 HWC frame."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(np.stack(images[i:i + batch])).permute(0, 3, 1, 2).contiguous()
            out += list(seg.forward_features(seg.normalize(x)).logits_low.float().numpy())
    return out


def upsample(lab: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(lab.astype(np.int32), (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)


class Scorer:
    """mIoU (where labelled) + flip rate / TC per variant over many clips; metric flow cached per pair."""

    def __init__(self, classes, variants):
        from pipa_edge.data.flow import DISFlow
        from pipa_edge.train.metrics import ConfusionMeter
        from pipa_edge.train.video_metrics import VideoMeter

        self.classes, self.variants = classes, list(variants)
        self.cm = {v: ConfusionMeter(classes.num_classes, classes.ignore_index) for v in variants}
        self.video = {v: VideoMeter(classes.num_classes) for v in variants}
        self.video_fb = {v: VideoMeter(classes.num_classes) for v in variants}  # cross-check: Farneback flow
        self.flow = DISFlow("medium")
        # the labels themselves as the prediction: the flips a perfect model has to make (the floor)
        self.video_gt, self.video_gt_fb = VideoMeter(classes.num_classes), VideoMeter(classes.num_classes)
        # flicker: flips on pixels whose label stays the same across the pair (through the metric's flow)
        self.stable = {v: VideoMeter(classes.num_classes) for v in variants}
        self.stable_fb = {v: VideoMeter(classes.num_classes) for v in variants}  # the same through Farneback flow
        # flow-free: flips where the label of the same pixel position does not change (no estimator involved)
        self.stable_px = {v: VideoMeter(classes.num_classes) for v in variants}
        self.motion_px, self.valid, self.labelled, self.frames = [], [], 0, 0

    def clip(self, images, logits, labels=None):
        """One clip: ``images`` uint8 HWC, ``logits`` (K,h,w) each, ``labels`` (H,W) or None each."""
        import torch

        hw = images[0].shape[:2]
        flows = [self.flow(images[t + 1], images[t]) for t in range(len(images) - 1)]  # t+1 → t
        flows_fb = [farneback(images[t + 1], images[t]) for t in range(len(images) - 1)]
        self.frames += len(images)
        self.labelled += sum(lab is not None for lab in (labels or []))
        stable = None
        if labels is not None and all(lab is not None for lab in labels):
            stable = self._labels_pairs(labels, flows, flows_fb)
        for v in self.variants:
            f = make_filter(v)
            prev = None
            for t, (img, lg) in enumerate(zip(images, logits)):
                pred = upsample(f.update(lg[None], "logits", image=img)[0], hw)
                if v == "mc-ema" and t > 0 and f.motion.last:  # what the filter's flow saw
                    self.motion_px.append(f.motion.last["motion_px"])
                    self.valid.append(f.motion.last["valid"])
                if labels is not None and labels[t] is not None:
                    self.cm[v].update(torch.from_numpy(pred).long()[None], torch.from_numpy(labels[t]).long()[None])
                if prev is not None:
                    self.video[v].update(prev, pred, *flows[t - 1])
                    if stable is not None:
                        self.stable[v].update(prev, pred, flows[t - 1][0], stable[t - 1][0])
                        self.stable_fb[v].update(prev, pred, flows_fb[t - 1][0], stable[t - 1][1])
                        self.stable_px[v].update(prev, pred, None, stable[t - 1][2])
                    self.video_fb[v].update(prev, pred, *flows_fb[t - 1])
                prev = pred

    def _labels_pairs(self, labels, flows, flows_fb) -> list[np.ndarray]:
        """Flip rate / TC of the labels, pixels labelled in both frames only (ignore → no label).
        Returns per pair the masks (DIS, Farneback, no flow) of pixels whose label stays the same
        through the metric's flow (and that flow is valid), or at the same position: where a flip of
        the prediction is flicker, not a real change."""
        from pipa_edge.train.video_metrics import warp_prediction

        k = self.classes.num_classes
        labs = [np.where(lab < k, lab, -1).astype(np.int64) for lab in labels]
        stable = []
        for t in range(1, len(labs)):
            both = labs[t] >= 0
            for meter, (fl, valid) in ((self.video_gt, flows[t - 1]), (self.video_gt_fb, flows_fb[t - 1])):
                meter.update(labs[t - 1], labs[t], fl, valid & both)
            stable.append(tuple((warp_prediction(labs[t - 1], fl) == labs[t]) & both & valid
                                for fl, valid in (flows[t - 1], flows_fb[t - 1])) + ((labs[t - 1] == labs[t]) & both,))
        return stable

    def rows(self) -> dict:
        from pipa_edge.metrics import summarize

        out = {}
        for v in self.variants:
            vs = self.video[v].summary()
            miou = summarize(self.cm[v].matrix(), self.classes.names)["miou"] if self.labelled else None
            fb = self.video_fb[v].summary()
            st, stf, stp = self.stable[v].summary(), self.stable_fb[v].summary(), self.stable_px[v].summary()
            out[v] = {"miou": miou, "flip_rate": vs["flip_rate"], "tc": vs["tc"], "pairs": vs["pairs"],
                      "flip_rate_farneback": fb["flip_rate"], "tc_farneback": fb["tc"],
                      "flip_rate_label_stable": st["flip_rate"], "flip_rate_label_stable_farneback": stf["flip_rate"],
                      "flip_rate_label_static": stp["flip_rate"]}
        if self.video_gt.summary()["pairs"]:
            g, gf = self.video_gt.summary(), self.video_gt_fb.summary()
            out["labels"] = {"miou": 1.0, "flip_rate": g["flip_rate"], "tc": g["tc"], "pairs": g["pairs"],
                             "flip_rate_farneback": gf["flip_rate"], "tc_farneback": gf["tc"],
                             "flip_rate_label_stable": 0.0, "flip_rate_label_stable_farneback": 0.0,
                             "flip_rate_label_static": 0.0}
        out["_info"] = {"frames": self.frames, "labelled": self.labelled,
                        "filter_motion_px_median": float(np.median(self.motion_px)) if self.motion_px else None,
                        "filter_valid_mean": float(np.mean(self.valid)) if self.valid else None}
        return out


def farneback(img_t: np.ndarray, img_prev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Metric cross-check independent of DIS: Farneback flow t → prev, forward-backward checked."""
    import cv2

    from pipa_edge.data.flow import fb_consistency

    a, b = (cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_RGB2GRAY) for x in (img_t, img_prev))
    fwd = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 15, 3, 5, 1.2, 0)
    bwd = cv2.calcOpticalFlowFarneback(b, a, None, 0.5, 4, 15, 3, 5, 1.2, 0)
    return fwd, fb_consistency(fwd, bwd)


def lut_labels(ds, classes, idx):
    from pipa_edge.train.evaluate import label_lut

    lut = label_lut(getattr(ds, "classes", None), classes)
    labs = []
    for i in idx:
        lab = np.asarray(ds[i]["label"]).astype(np.int64)
        labs.append(lab if lut is None else lut.numpy()[np.clip(lab, 0, 255)])
    return labs


def bench_synth(a) -> dict:
    from pipa_edge.data.datasets.pairs import dataset_sequences
    from pipa_edge.data.synth.dataset import SynthDataset
    from pipa_edge.models.io import load_segmenter

    seg = load_segmenter(a.synth_ckpt).eval()
    ds = SynthDataset(a.synth_data, "real_seq", classes=seg.classes)
    native, sub = Scorer(seg.classes, a.variants), Scorer(seg.classes, a.variants)
    for seq, idx in dataset_sequences(ds).items():
        images = [np.ascontiguousarray(ds[i]["image"]) for i in idx]
        labels = lut_labels(ds, seg.classes, idx)
        logits = model_logits(seg, images)
        n = min(len(idx), a.native_frames)
        native.clip(images[:n], logits[:n], labels[:n])
        for off in range(0, a.stride, max(1, a.stride // a.offsets)):
            pick = list(range(off, len(idx), a.stride))
            if len(pick) >= 2:
                sub.clip([images[i] for i in pick], [logits[i] for i in pick], [labels[i] for i in pick])
        print(f"[bench] synth sequence {seq}: {len(idx)} frames", flush=True)
    return {"native": native.rows(), f"stride{a.stride}": sub.rows()}


def camvid_clips(root: Path, split: str, classes, max_gap: int):
    """CamVid frames of one split, grouped into clips per sequence (split where frame numbers jump)."""
    import re

    from pipa_edge.data.datasets.sequences import CamVidSeqDataset

    ds = CamVidSeqDataset(root, split, classes=classes, resize=(180, 240))
    from pipa_edge.data.datasets.pairs import dataset_sequences

    clips = []
    for seq, idx in dataset_sequences(ds).items():
        nums = [int(re.sub(r"\D", "", ds[i]["name"].split("_")[-1]) or 0) for i in idx]
        cur = [idx[0]]
        for j in range(1, len(idx)):
            if nums[j] - nums[j - 1] > max_gap:
                clips.append((seq, cur))
                cur = []
            cur.append(idx[j])
        clips.append((seq, cur))
        gaps = np.diff(nums)
        print(f"[bench] camvid {split}/{seq}: {len(idx)} frames, frame-number gaps median {np.median(gaps):.0f} "
              f"(max {gaps.max()}), {sum(1 for s, _ in clips if s == seq)} clip(s)", flush=True)
    return ds, clips


def bench_camvid(a) -> dict:
    from pipa_edge.models.io import load_segmenter

    seg = load_segmenter(a.camvid_ckpt).eval()
    out = {}
    for split in ("dusk_train", "day_train"):
        ds, clips = camvid_clips(Path(a.camvid), split, seg.classes, a.camvid_max_gap)
        sc = Scorer(seg.classes, a.variants)
        for _seq, idx in clips:
            images = [np.ascontiguousarray(ds[i]["image"]) for i in idx]
            sc.clip(images, model_logits(seg, images), lut_labels(ds, seg.classes, idx))
        out[split] = sc.rows()
    return out


def bench_dashcam(a) -> dict:
    from pipa_edge.data.datasets.video import VideoDataset
    from pipa_edge.models.io import load_segmenter

    seg = load_segmenter(a.camvid_ckpt).eval()
    ds = VideoDataset(a.video, seg.classes, resize=tuple(a.dashcam_size))
    images = [np.ascontiguousarray(ds[i]["image"]) for i in range(min(len(ds), a.dashcam_frames))]
    sc = Scorer(seg.classes, a.variants)
    sc.clip(images, model_logits(seg, images))
    return {"native": sc.rows(), "size": a.dashcam_size}


def bench_cost(a, ckpt: str, sizes) -> dict:
    """ORT inference (threads) vs filter and flow + warp, per input size, on dash-cam frames."""
    import tempfile

    import onnx
    import onnxruntime as ort

    from pipa_edge.data.datasets.video import VideoDataset
    from pipa_edge.export.onnx import export_onnx
    from pipa_edge.models.io import load_segmenter

    seg = load_segmenter(ckpt).eval()
    res = {}
    for hw in sizes:
        with tempfile.TemporaryDirectory() as td:
            p = Path(td) / "m.onnx"
            onnx.save(export_onnx(seg, p, hw, output_resolution="model"), str(p))
            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = a.threads, 1
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # CPU time = work
            sess = ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        mean = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None] * 255
        std = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None] * 255
        ds = VideoDataset(a.video, seg.classes, resize=tuple(hw))
        frames = [np.ascontiguousarray(ds[i]["image"]) for i in range(a.cost_frames)]
        t_inf, c_inf, outs = [], [], []
        for img in frames:
            x = ((img.transpose(2, 0, 1).astype(np.float32) - mean) / std)[None]
            t0, c0 = time.perf_counter(), time.process_time()
            outs.append(sess.run(None, {name: x})[0])
            t_inf.append(time.perf_counter() - t0)
            c_inf.append(time.process_time() - c0)
        # min over the runs: the least-contended sample of each stage on a shared CPU (medians kept too)
        row = {"infer_ms": 1000 * float(np.min(t_inf[2:])), "infer_ms_median": 1000 * float(np.median(t_inf[2:])),
               "model_res": list(outs[0].shape[2:]), "infer_cpu_ms": 1000 * float(np.median(c_inf[2:]))}
        for v in ("ema", "mc-ema"):
            f, t_f, t_m, c_f = make_filter(v), [], [], []
            for img, o in zip(frames, outs):
                t0, c0 = time.perf_counter(), time.process_time()
                f.update(o, "logits", image=img)
                t_f.append(time.perf_counter() - t0)
                c_f.append(time.process_time() - c0)
                t_m.append(f.motion_s)
            row[f"{v}_cpu_ms"] = 1000 * float(np.median(c_f[2:]))
            row[f"{v}_ms"] = 1000 * float(np.min(t_f[2:]))
            row[f"{v}_ms_median"] = 1000 * float(np.median(t_f[2:]))
            if v == "mc-ema":
                row["flow_warp_ms"] = 1000 * float(np.min(t_m[2:]))
        for k in ("ema", "mc-ema"):
            row[f"{k}_pct"] = 100 * row[f"{k}_ms"] / row["infer_ms"]
            # CPU-time estimate of the wall share: filter CPU / (inference CPU / threads), i.e. as if
            # inference scaled perfectly over its threads (conservative: real scaling is worse)
            row[f"{k}_pct_cpu"] = 100 * row[f"{k}_cpu_ms"] / (row["infer_cpu_ms"] / a.threads)
        res[f"{hw[0]}x{hw[1]}"] = row
        print(f"[bench] cost {hw}: {row}", flush=True)
    return res


def pct(v):
    return "-" if v is None else f"{100 * v:.1f}"


def print_tables(res: dict) -> None:
    print(f"\n{'set':28s} {'row':11s} {'mIoU %':>7s} {'flip %':>7s} {'TC %':>6s} {'flip(F) %':>9s} "
          f"{'TC(F) %':>7s} {'flicker %':>9s} {'flicker(F) %':>12s} {'flicker(px) %':>13s} {'pairs':>6s}")
    for set_name, rows in res["quality"].items():
        for v in [v for v in rows if not v.startswith("_")]:
            r = rows[v]
            print(f"{set_name:28s} {v:11s} {pct(r['miou']):>7s} {pct(r['flip_rate']):>7s} {pct(r['tc']):>6s} "
                  f"{pct(r['flip_rate_farneback']):>9s} {pct(r['tc_farneback']):>7s} "
                  f"{pct(r.get('flip_rate_label_stable')):>9s} "
                  f"{pct(r.get('flip_rate_label_stable_farneback')):>12s} "
                  f"{pct(r.get('flip_rate_label_static')):>13s} {r['pairs']:6d}")
    if res.get("cost"):
        print(f"\n{'input':9s} {'model res':>9s} {'infer ms':>9s} {'ema ms':>7s} {'mc-ema ms':>9s} "
              f"{'flow+warp':>9s} {'ema %':>6s} {'mc-ema %':>8s} {'mc-ema % (cpu)':>14s}")
        for k, r in res["cost"].items():
            print(f"{k:9s} {'x'.join(map(str, r['model_res'])):>9s} {r['infer_ms']:9.1f} {r['ema_ms']:7.2f} "
                  f"{r['mc-ema_ms']:9.2f} {r['flow_warp_ms']:9.2f} {r['ema_pct']:6.1f} {r['mc-ema_pct']:8.1f} "
                  f"{r['mc-ema_pct_cpu']:14.1f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--synth-ckpt", default="runs/demo/pipa/final.pt", help="a synth11 model (make demo's)")
    ap.add_argument("--synth-data", default="runs/h4_motion/synth_eval", help="pipa-edge data synth ... --n-seq")
    ap.add_argument("--camvid-ckpt", default="runs/camvid_heldout/source_s1/final.pt",
                    help="a camvid11 model (bench/camvid_adapt.py's strong source, seed 1)")
    ap.add_argument("--camvid", default=str(SHARED / "camvid"))
    ap.add_argument("--camvid-max-gap", type=int, default=400, help="frame-number jump that starts a new clip")
    ap.add_argument("--video", default=str(SHARED / "video" / "solidWhiteRight.mp4"))
    ap.add_argument("--dashcam-size", type=int, nargs=2, default=[180, 320])
    ap.add_argument("--dashcam-frames", type=int, default=221)
    ap.add_argument("--native-frames", type=int, default=50, help="frames per synthetic sequence at 25 fps")
    ap.add_argument("--stride", type=int, default=25, help="sub-sampling of the synthetic sequences (25 = 1 fps)")
    ap.add_argument("--offsets", type=int, default=5, help="start offsets of the sub-sampled clips")
    ap.add_argument("--cost-sizes", default="180x240,360x640", help="input sizes of the cost rows")
    ap.add_argument("--cost-frames", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-height", type=int, default=64, help="MotionCompensator(min_height=...)")
    ap.add_argument("--only", nargs="+", default=["synth", "camvid", "dashcam", "cost"],
                    choices=["synth", "camvid", "dashcam", "cost"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), help="filter rows (make_filter)")
    ap.add_argument("--json", default="docs/results/temporal_motion.json")
    a = ap.parse_args()
    import torch

    lib_temporal_variants.MIN_HEIGHT = a.min_height
    torch.set_num_threads(a.threads)
    jpath = REPO / a.json
    res = json.loads(jpath.read_text()) if jpath.is_file() else {}
    cmd = "python bench/temporal_motion.py " + " ".join(sys.argv[1:])
    res.setdefault("commands", {}).update({part: f"{cmd}  ({a.threads} threads)" for part in a.only})
    res.update({"filter": {"alpha": 0.5, "delta": 0.1, "frames": 3, "motion": f"dis-medium, >= {a.min_height} rows, fb check"},
                "checkpoints": {"synth": a.synth_ckpt, "camvid": a.camvid_ckpt}})
    res.setdefault("quality", {})
    if "synth" in a.only:
        s = bench_synth(a)
        res["quality"]["synth real_seq 25 fps"] = s["native"]
        res["quality"][f"synth real_seq 1/{a.stride} (1 fps)"] = s[f"stride{a.stride}"]
    if "camvid" in a.only:
        c = bench_camvid(a)
        res["quality"]["camvid dusk 0001TP"] = c["dusk_train"]
        res["quality"]["camvid day 0016E5+0006R0"] = c["day_train"]
    if "dashcam" in a.only:
        res["quality"]["dash-cam clip (no labels)"] = bench_dashcam(a)["native"]
    if "cost" in a.only:
        sizes = [tuple(int(v) for v in s.split("x")) for s in a.cost_sizes.split(",")]
        res["cost"] = bench_cost(a, a.camvid_ckpt, sizes)
    jpath.parent.mkdir(parents=True, exist_ok=True)
    jpath.write_text(json.dumps(res, indent=1))
    print_tables(res)
    print(f"[bench] wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
