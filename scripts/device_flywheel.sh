#!/usr/bin/env bash
# The on-device adaptation flywheel on the embedded synthetic sim→real data (issue 25):
#   camera (the real-style frames as a stream) → `run --collect` → `adapt-bn` → `run` with the new model,
# then checks that the adapted model scores HIGHER on held-out real-style frames than before (exit 1 if not).
#
#   scripts/device_flywheel.sh DEVICE_PY OUT_DIR
#
# DEVICE_PY: the python of a device venv (the `device` extra only, no torch) — every device step runs
# with it. The workstation part (synthetic data, a short LR-ASPP training on 'sim' + precise BN on 'sim'
# so the "before" model has proper source statistics, the export with its
# BN adaptation data) runs with the main .venv (WS_PY to override) and is skipped when OUT_DIR/flywheel/model
# already holds the export. Everything goes to OUT_DIR/flywheel/. 35 s – 2 min on 2 (shared) cores.
set -euo pipefail

DEVICE_PY=${1:?usage: scripts/device_flywheel.sh DEVICE_PY OUT_DIR}
OUT=${2:?usage: scripts/device_flywheel.sh DEVICE_PY OUT_DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WS_PY=${WS_PY:-$ROOT/.venv/bin/python}
ITERS=${FLYWHEEL_ITERS:-80}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1} PYTHONUNBUFFERED=1
mkdir -p "$OUT/flywheel"
OUT=$(cd "$OUT/flywheel" && pwd)  # everything in a subfolder: OUT_DIR may be shared with other checks
MODEL=$OUT/model/synth.onnx
cd "$ROOT"  # `python -m pipa_edge…` then runs this checkout's code in both venvs
say() { printf '\n== flywheel: %s\n' "$*"; }

# ---- workstation: data, model, export (main venv) ----
if [ ! -f "$MODEL" ]; then
  say "workstation: synthetic data, ${ITERS}-iteration source-only training on sim, export"
  "$WS_PY" -m pipa_edge.cli.main data synth "$OUT/synth" --n-sim 48 --n-real 48 --size 128 256 --workers 1
  "$WS_PY" -m pipa_edge.cli.main train "$ROOT/train/synth_source_only.yaml" --out "$OUT/train" \
    --set model.arch=lraspp-mbv3 --set source.root="$OUT/synth" --set source.resize=null --set 'val=[]' \
    --set optim.max_iters="$ITERS" --set optim.warmup_iters=10 --set eval_interval=100000 \
    --set ckpt_interval=100000 --set log_interval=20 \
    --set precise_bn.enabled=true --set precise_bn.images=source --set precise_bn.num_images=48
  "$WS_PY" -m pipa_edge.cli.main export "$OUT/train/final.pt" --out "$OUT/model" --name synth --imgsz 128 256 \
    --bench-runs 0
fi
for f in synth.onnx synth.onnx.json synth.bnadapt.npz synth.bnstats.onnx; do
  [ -f "$OUT/model/$f" ] || { echo "flywheel: $OUT/model/$f missing (export without BN adaptation data?)" >&2; exit 1; }
done

# ---- device: everything below runs with DEVICE_PY and must not import torch ----
say "device: $("$DEVICE_PY" -c 'import sys; print(sys.version.split()[0])') at $DEVICE_PY"
"$DEVICE_PY" - <<'EOF'
import importlib.util, sys
bad = [m for m in ("torch", "torchvision", "segmentation_models_pytorch") if importlib.util.find_spec(m)]
print("device venv: torch-free" if not bad else f"device venv has {bad} (not a device install; the check still runs)")
EOF
# the camera: the first half of the real-style frames as a stream; the second half is held out
rm -rf "$OUT/stream" "$OUT/collect" "$OUT/adapted"
mkdir -p "$OUT/stream"
for i in $(seq 0 23); do ln -s "$OUT/synth/real/images/$(printf '%05d' "$i").png" "$OUT/stream/"; done

say "device: run --collect (stream → collection)"
"$DEVICE_PY" -m pipa_edge.cli.main run "$OUT/stream" none --model "$MODEL" --headless --quiet-stats --no-drop \
  --collect "$OUT/collect" --collect-set thresholds.value=0 --collect-set min_confident_fraction=0 \
  --collect-set max_mean_entropy=1 --collect-set min_blur_var=0 --collect-set min_interval_s=0 \
  --collect-set stability.frames=1 --collect-set dedup.enabled=false --collect-set storage.image_format=png \
  --collect-set queue_size=64

say "device: adapt-bn on the collection"
"$DEVICE_PY" -m pipa_edge.cli.main adapt-bn "$MODEL" --frames "$OUT/collect" --out "$OUT/adapted/synth_adapted.onnx"

say "device: run with the adapted model"
"$DEVICE_PY" -m pipa_edge.cli.main run "$OUT/synth/real/images" none --model "$OUT/adapted/synth_adapted.onnx" \
  --headless --quiet-stats --max-frames 8 --stats-json "$OUT/adapted/run_stats.json"

say "device: score before / after on the 24 held-out real-style frames"
"$DEVICE_PY" - "$MODEL" "$OUT/adapted/synth_adapted.onnx" "$OUT/synth/real" "$OUT/flywheel.json" <<'EOF'
import json, sys
from pathlib import Path
import cv2, numpy as np
from pipa_edge.runtime.backends.ort_backend import OrtBackend

before, after, real, out = sys.argv[1:5]
def miou(model: str) -> float:
    b = OrtBackend(model)
    k, (h, w) = b.meta.classes.num_classes, b.meta.input_size
    cm = np.zeros((k, k), np.int64)
    for i in range(24, 48):
        img = cv2.cvtColor(cv2.imread(f"{real}/images/{i:05d}.png"), cv2.COLOR_BGR2RGB)
        lab = cv2.imread(f"{real}/labels/{i:05d}.png", cv2.IMREAD_UNCHANGED)
        y = b.infer(cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)[None])[0]
        if b.meta.output == "labels":
            pred = cv2.resize(y, lab.shape[::-1], interpolation=cv2.INTER_NEAREST)
        else:  # scores: resize (log-probabilities) bilinearly, then argmax
            s = np.log(np.maximum(y, 1e-30)) if b.meta.output == "probs" else y
            pred = cv2.resize(np.ascontiguousarray(s.transpose(1, 2, 0)), lab.shape[::-1]).argmax(-1)
        m = lab != 255
        cm += np.bincount(lab[m].astype(np.int64) * k + pred[m], minlength=k * k).reshape(k, k)
    iou = np.diag(cm) / np.maximum(cm.sum(0) + cm.sum(1) - np.diag(cm), 1)
    return float(100 * iou[cm.sum(1) > 0].mean())
mb, ma = miou(before), miou(after)
json.dump({"miou_before": mb, "miou_after": ma, "held_out_frames": 24}, open(out, "w"), indent=2)
print(f"held-out real-style mIoU: before {mb:.2f} → after adapt-bn {ma:.2f} ({ma - mb:+.2f})")
sys.exit(0 if ma > mb else 1)
EOF
say "ok: the adapted model scores higher ($OUT/flywheel.json)"
