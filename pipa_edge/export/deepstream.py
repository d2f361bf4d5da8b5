"""DeepStream ``nvinfer`` config (semantic segmentation, ``network-type=2``) next to the export.

nvinfer feeds ``y = net-scale-factor * (x - offsets)`` per pixel, with ``x`` in [0, 255], one
scale for all channels and one offset per channel. Our normalisation is
``(x/255 - mean) / std`` per channel, so ``offsets = 255·mean`` exactly and
``net-scale-factor = 1 / (255·std)`` — exact only when the three std values are equal; otherwise
the mean std is used and the worst relative error is written in the file.
"""

from __future__ import annotations

from pathlib import Path

from pipa_edge.runtime.backends.base import ModelMeta

NETWORK_MODE = {"fp32": 0, "int8": 1, "fp16": 2}


def deepstream_compatible(meta: ModelMeta) -> str | None:
    """None when nvinfer can run this graph, else the reason it cannot."""
    if meta.input_format != "float_nchw":
        return "nvinfer feeds float NCHW; export with input_format float_nchw for DeepStream"
    if meta.output == "labels":
        return "nvinfer segmentation parses class scores; export with output logits or probs for DeepStream"
    return None


def nvinfer_config(meta: ModelMeta, onnx_file: str | Path, engine_file: str | Path | None = None,
                   labels_file: str | Path | None = None, network_mode: int | None = None,
                   batch: int = 1) -> str:
    h, w = meta.input_size
    std = sum(meta.std) / 3.0
    scale = 1.0 / (255.0 * std)
    err = max(abs(s - std) / s for s in meta.std)
    offsets = ";".join(f"{255.0 * m:.3f}" for m in meta.mean)
    mode = NETWORK_MODE.get(meta.precision, 0) if network_mode is None else network_mode
    lines = [
        "# DeepStream nvinfer config written by `pipa-edge export` (semantic segmentation).",
        f"# classes: {meta.classes.name} ({meta.classes.num_classes}); output: {meta.output} at "
        f"{meta.output_resolution} resolution.",
        f"# normalisation (x/255-mean)/std: offsets exact; single net-scale-factor uses mean std "
        f"(max relative error {100 * err:.2f}% vs per-channel std).",
        "[property]",
        "gpu-id=0",
        f"net-scale-factor={scale:.10f}",
        f"offsets={offsets}",
        "model-color-format=0",
        f"onnx-file={Path(onnx_file).name}",
    ]
    if engine_file:
        lines.append(f"model-engine-file={Path(engine_file).name}")
    if labels_file:
        lines.append(f"labelfile-path={Path(labels_file).name}")
    lines += [
        f"infer-dims=3;{h};{w}",
        f"batch-size={batch}",
        f"network-mode={mode}",
        f"num-detected-classes={meta.classes.num_classes}",
        "interval=0",
        "gie-unique-id=1",
        "network-type=2",
        "output-blob-names=output",
        "segmentation-threshold=0.0",
        "segmentation-output-order=0",
        "maintain-aspect-ratio=0",
        "",
    ]
    return "\n".join(lines)


def write_deepstream(meta: ModelMeta, onnx_file: str | Path, engine_file: str | Path | None = None,
                     network_mode: int | None = None, batch: int = 1) -> tuple[Path, Path]:
    onnx_file = Path(onnx_file)
    stem = onnx_file.name[: -len(onnx_file.suffix)]
    labels = onnx_file.with_name(f"{stem}.labels.txt")
    labels.write_text("\n".join(meta.classes.names) + "\n")
    cfg = onnx_file.with_name(f"{stem}.nvinfer.txt")
    cfg.write_text(nvinfer_config(meta, onnx_file, engine_file, labels, network_mode, batch))
    return cfg, labels
