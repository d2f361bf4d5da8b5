"""Segmenter → ONNX (opset 17, TorchScript exporter ``dynamo=False``); written with metadata embedded + sidecar
by :func:`pipa_edge.runtime.backends.sidecar.save_onnx`."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from pipa_edge.runtime.backends.base import ModelMeta

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "output"


def build_meta(segmenter, input_size, input_format: str, output: str, output_resolution: str,
               precision: str = "fp32", **extra) -> ModelMeta:
    return ModelMeta(classes=segmenter.classes, input_size=tuple(int(v) for v in input_size),
                     mean=tuple(segmenter.mean), std=tuple(segmenter.std), input_format=input_format, output=output,
                     output_resolution=output_resolution, precision=precision,
                     extra={"arch": segmenter.arch, "output_stride": segmenter.output_stride, **extra})


def export_onnx(segmenter, path: str | Path, input_size: tuple[int, int], *, input_format: str = "float_nchw",
                output: str = "logits", output_resolution: str = "input", dynamic: bool = False,
                batch: int = 1, opset: int = OPSET):
    """Trace the plain segmenter wrapped in :class:`DeployModel` and return the ``onnx.ModelProto``.

    ``dynamic`` makes batch, H and W symbolic (output size then follows the input's shape);
    otherwise every shape is static and the Resize gets constant ``sizes``.
    """
    import onnx
    import torch

    from pipa_edge.models.graph import DeployModel

    h, w = (int(v) for v in input_size)
    model = DeployModel(segmenter, input_format=input_format, output=output, output_resolution=output_resolution,
                        static_size=None if dynamic else (h, w)).eval()
    if input_format == "uint8_nhwc":
        dummy = torch.randint(0, 256, (batch, h, w, 3), dtype=torch.uint8)
        dyn_in = {0: "batch", 1: "height", 2: "width"}
    else:
        dummy = torch.randn(batch, 3, h, w)
        dyn_in = {0: "batch", 2: "height", 3: "width"}
    dyn_out = {0: "batch", 1: "out_height", 2: "out_width"} if output == "labels" else \
        {0: "batch", 2: "out_height", 3: "out_width"}
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (dummy,), buf, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], do_constant_folding=True,
                          dynamic_axes={INPUT_NAME: dyn_in, OUTPUT_NAME: dyn_out} if dynamic else None)
    proto = onnx.load_from_string(buf.getvalue())
    proto.producer_name = "pipa-edge"
    return proto


STATE_INPUTS = ["ema", "label", "pending", "count"]
STATE_OUTPUTS = ["ema_out", "label_out", "pending_out", "count_out"]
STATE_INIT = [0, -1, -1, 0]  # first frame: EMA zeros (no state yet), no label, no pending candidate, count 0


def export_onnx_stateful(segmenter, input_size: tuple[int, int], *, alpha: float, delta: float, persist: int,
                         input_format: str = "float_nchw", batch: int = 1, opset: int = OPSET):
    """The segmenter with the temporal filter inside the graph (static shapes, model resolution).

    Inputs ``frame`` + ``ema (B,K,h,w) float32``, ``label``/``pending``/``count (B,h,w) int32``;
    outputs ``labels (B,h,w) uint8`` + the new state (``*_out``). Returns ``(proto, (h, w))``.
    """
    import onnx
    import torch

    from pipa_edge.models.graph import DeployModel, output_size
    from pipa_edge.runtime.temporal import StatefulSegmenter

    class _Graph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            deploy = DeployModel(segmenter, input_format=input_format, output="logits", output_resolution="model")
            self.inner = StatefulSegmenter(deploy, alpha, delta, persist)

        def forward(self, frame, ema, label, pending, count):
            out, ema_new, pend, cnt = self.inner(frame, ema, label, pending, count)
            return out.to(torch.uint8), ema_new, out, pend, cnt

    h, w = (int(v) for v in input_size)
    oh, ow = output_size(segmenter, (h, w), "model")
    k = segmenter.num_classes
    frame = torch.randint(0, 256, (batch, h, w, 3), dtype=torch.uint8) if input_format == "uint8_nhwc" \
        else torch.randn(batch, 3, h, w)
    minus1 = torch.full((batch, oh, ow), -1, dtype=torch.int32)
    state = (torch.zeros(batch, k, oh, ow), minus1, minus1.clone(), torch.zeros(batch, oh, ow, dtype=torch.int32))
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Graph().eval(), (frame, *state), buf, dynamo=False, opset_version=opset,
                          input_names=["frame", *STATE_INPUTS], output_names=["labels", *STATE_OUTPUTS],
                          do_constant_folding=True)
    proto = onnx.load_from_string(buf.getvalue())
    proto.producer_name = "pipa-edge"
    return proto, (oh, ow)
