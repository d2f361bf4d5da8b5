#!/usr/bin/env bash
# The device install, end to end, on x86 (CI): what runtime/README.md tells a Jetson user to do.
#   1. a Python 3.10 venv (JetPack 6's Python) with ONLY pipa-edge[device] (+ tensorrt-rtx-cu13,
#      which stands in for JetPack's TensorRT: it parses and builds engines without a GPU);
#      torch, torchvision, onnxsim, matplotlib must not be importable there;
#   2. the workstation (.venv) exports a tiny model: x.onnx + x.onnx.json;
#   3. in the device venv: run test:// → none, run --collect, collect verify, bench x.onnx,
#      export x.onnx --format engine (FP32, and INT8 calibrated on the collected frames), and a
#      workstation command that must say how to install the workstation extra (exit 2);
#   4. scripts/device_flywheel.sh DEVICE_PY OUT_DIR when it exists.
# Env: DEVICE_PYTHON (a python3.10; default: pyenv's newest 3.10), DEVICE_VENV (default .venv-device),
#      WORK_PY (default .venv/bin/python), OUT (default runs/device_check).
set -euo pipefail
cd "$(dirname "$0")/.."
DV=${DEVICE_VENV:-.venv-device}
WORK_PY=${WORK_PY:-.venv/bin/python}
OUT=${OUT:-runs/device_check}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} PYTHONUNBUFFERED=1

say() { printf '\033[1;35m[device-check]\033[0m %s\n' "$*"; }
fail() { printf '\033[1;31m[device-check] FAILED:\033[0m %s\n' "$*" >&2; exit 1; }
ms_now() { date +%s%3N; }

find_py310() {
  if [ -n "${DEVICE_PYTHON:-}" ]; then echo "$DEVICE_PYTHON"; return; fi
  local root
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  local cand
  cand=$(ls -d "$root"/versions/3.10.*/bin/python 2>/dev/null | sort -V | tail -1 || true)
  if [ -n "$cand" ]; then echo "$cand"; return; fi
  command -v python3.10 || true
}

# 1. The device venv (deps keyed by pyproject.toml + the Python version; the package itself reinstalled
#    from the checkout every run, as a wheel: what a device gets, not an editable link).
PY310=$(find_py310)
[ -n "$PY310" ] && "$PY310" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null \
  || fail "no Python 3.10 (JetPack 6's Python) found: set DEVICE_PYTHON, or pyenv install 3.10"
[ -x "$WORK_PY" ] || fail "$WORK_PY missing: run scripts/setup.sh (the workstation install) first"
mkdir -p "$OUT"
rm -rf "$OUT"/{model,engine,bench,collect} "$OUT"/*.json
sig=$( (cat pyproject.toml; "$PY310" -V) | sha256sum | cut -c1-16)
if [ ! -x "$DV/bin/python" ] || [ "$(cat "$DV/.pipa-edge-device" 2>/dev/null)" != "$sig" ]; then
  rm -rf "$DV"
  say "creating $DV with $("$PY310" -V) and pipa-edge[device] (+ trt-rtx): a few minutes the first time"
  "$PY310" -m venv "$DV"
  extras=device
  # TensorRT-RTX stands in for the Jetson's TensorRT where it has a wheel for this platform
  if "$DV/bin/pip" download -q --no-deps -d "$OUT/.probe" tensorrt-rtx-cu13 >"$OUT/pip-probe.log" 2>&1; then
    extras=device,trt-rtx
  else
    say "tensorrt-rtx-cu13 has no wheel for $("$PY310" -V): the engine build step is skipped"
  fi
  rm -rf "$OUT/.probe"
  "$DV/bin/pip" install -q --progress-bar off ".[$extras]" >"$OUT/pip-device.log" 2>&1 \
    || { tail -20 "$OUT/pip-device.log"; fail "pip install '.[$extras]' into $DV"; }
  echo "$sig" > "$DV/.pipa-edge-device"
else
  "$DV/bin/pip" install -q --progress-bar off --no-deps --force-reinstall . >"$OUT/pip-device.log" 2>&1 \
    || { tail -20 "$OUT/pip-device.log"; fail "pip install --no-deps . into $DV"; }
fi
DPY="$DV/bin/python"
PE="$DV/bin/pipa-edge"
"$DPY" - <<'EOF' || fail "the device venv holds workstation packages (see above)"
import importlib.util, sys
bad = [m for m in ("torch", "torchvision", "segmentation_models_pytorch", "onnxsim", "matplotlib")
       if importlib.util.find_spec(m) is not None]
print(f"[device-check] Python {sys.version.split()[0]}; workstation packages importable: {bad or 'none'}")
sys.exit(1 if bad else 0)
EOF

# 2. The workstation's export: a tiny random-init LR-ASPP → x.onnx + x.onnx.json (seconds).
say "workstation: tiny checkpoint → x.onnx (with $WORK_PY)"
"$WORK_PY" - "$OUT/model" <<'EOF'
import sys
from pathlib import Path
import torch
from pipa_edge.data.classes import SYNTH11
from pipa_edge.models import build_segmenter, save_segmenter
torch.manual_seed(0)
save_segmenter(Path(sys.argv[1]) / "tiny.pt", build_segmenter("lraspp-mbv3", SYNTH11).eval())
EOF
"$WORK_PY" -m pipa_edge.cli.main export "$OUT/model/tiny.pt" --format onnx --imgsz 128 256 --name x \
  --bench-runs 0 --out "$OUT/model" >"$OUT/export-workstation.log" 2>&1 \
  || { tail -20 "$OUT/export-workstation.log"; fail "workstation export of the tiny checkpoint"; }
X="$OUT/model/x.onnx"
[ -f "$X" ] && [ -f "$X.json" ] || fail "the workstation export wrote no $X + sidecar"

# 3. The device steps.
t0=$(ms_now); "$PE" run --help >/dev/null; t1=$(ms_now)
help_ms=$((t1 - t0))
say "pipa-edge run --help: ${help_ms} ms"
say "run test:// none --model x.onnx --max-frames 30"
"$PE" run test:// none --model "$X" --max-frames 30 --stats-json "$OUT/run.json" || fail "pipa-edge run"
say "run --collect (the frames for INT8 calibration), collect verify"
# (the tiny model is random-init, so its confidence gates are opened to keep frames at all)
"$PE" run test:// none --model "$X" --max-frames 30 --quiet-stats --collect "$OUT/collect" \
  $(printf -- '--collect-set %s ' min_interval_s=0 thresholds.value=0 min_confident_fraction=0 max_mean_entropy=1 \
    stability.frames=1 min_blur_var=0 dedup.enabled=false) || fail "pipa-edge run --collect"
"$PE" collect verify "$OUT/collect" || fail "pipa-edge collect verify"
ls "$OUT"/collect/images/* >/dev/null 2>&1 || fail "run --collect kept no frame in $OUT/collect/images"
say "bench x.onnx"
"$PE" bench "$X" --iters 30 --warmup 5 --rounds 3 --out "$OUT/bench" || fail "pipa-edge bench"
engine="skipped (no tensorrt-rtx wheel for this Python)"
if "$DPY" -c 'import tensorrt_rtx' 2>/dev/null; then
  say "export x.onnx --format engine (TensorRT-RTX parse/build on the CPU), FP32 and INT8 --calib collection"
  "$PE" export "$X" --format engine --out "$OUT/engine" || fail "pipa-edge export x.onnx --format engine"
  "$PE" export "$X" --format engine --precision int8 --calib "$OUT/collect" --calib-n 8 --out "$OUT/engine" \
    || fail "pipa-edge export x.onnx --format engine --precision int8 --calib"
  n=$(ls "$OUT"/engine/*.engine | wc -l)
  [ "$n" = 2 ] || fail "expected 2 engines in $OUT/engine, found $n"
  engine="built: $(cd "$OUT/engine" && ls *.engine | tr '\n' ' ')"
fi
say "a workstation command on the device must say how to get the workstation install"
set +e
msg=$("$PE" export "$OUT/model/tiny.pt" 2>&1); rc=$?
set -e
[ "$rc" = 2 ] && grep -q "needs the workstation install" <<<"$msg" && grep -q "pipa-edge\[train\]" <<<"$msg" \
  || fail "export CKPT on the device: expected exit 2 and the install hint, got rc=$rc: $msg"

# 4. H6's on-device BN adaptation flywheel, when present.
if [ -f scripts/device_flywheel.sh ]; then
  say "scripts/device_flywheel.sh $DPY $OUT"
  bash scripts/device_flywheel.sh "$DPY" "$OUT" || fail "scripts/device_flywheel.sh"
fi

size=$(du -sh "$DV" | cut -f1)
"$DPY" - "$OUT" "$size" "$help_ms" "$engine" <<'EOF'
import json, sys
out, size, help_ms, engine = sys.argv[1:5]
run = json.load(open(f"{out}/run.json"))
bench = json.load(open(f"{out}/bench/bench.json"))["results"][0]
summary = {"device_venv_size": size, "run_help_ms": int(help_ms), "run_frames": run.get("frames"),
           "bench_p50_ms": bench["host_ms"]["p50"], "engine": engine}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)
print(f"[device-check] ok: venv {size}, `pipa-edge run --help` {help_ms} ms, run {run.get('frames')} frames, "
      f"bench p50 {bench['host_ms']['p50']:.2f} ms, engine {engine}")
EOF
