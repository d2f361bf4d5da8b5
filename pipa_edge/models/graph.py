"""The deployable graph around a plain :class:`~pipa_edge.models.Segmenter`.

:class:`DeployModel` is what gets exported (and what the torch backend runs, so both share one
definition of every graph option):

- input ``float_nchw`` (already normalised) or ``uint8_nhwc`` (raw RGB frame; the graph does
  ``float → permute → (x - 255·mean) / (255·std)``, written as one multiply-add);
- output ``logits`` / ``probs`` (softmax over classes) / ``labels`` (argmax in the graph, cast to
  ``uint8`` so no INT64 tensor leaves the graph);
- resolution ``model`` (the segmenter's output stride) or ``input`` (bilinear,
  ``align_corners=False``, explicit output size — the TensorRT-safe form of Resize).

Only the segmenter is wrapped: no projection head, no teacher.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

INPUT_FORMATS = ("float_nchw", "uint8_nhwc")
OUTPUT_KINDS = ("logits", "probs", "labels")
RESOLUTIONS = ("model", "input")


class DeployModel(nn.Module):
    def __init__(self, segmenter: nn.Module, input_format: str = "float_nchw", output: str = "logits",
                 output_resolution: str = "input", static_size: tuple[int, int] | None = None):
        super().__init__()
        if input_format not in INPUT_FORMATS:
            raise ValueError(f"input_format must be one of {INPUT_FORMATS}, got {input_format!r}")
        if output not in OUTPUT_KINDS:
            raise ValueError(f"output must be one of {OUTPUT_KINDS}, got {output!r}")
        if output_resolution not in RESOLUTIONS:
            raise ValueError(f"output_resolution must be one of {RESOLUTIONS}, got {output_resolution!r}")
        self.segmenter = segmenter.eval()
        self.input_format = input_format
        self.output = output
        self.output_resolution = output_resolution
        self.static_size = tuple(int(v) for v in static_size) if static_size else None
        mean = torch.tensor(segmenter.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(segmenter.std, dtype=torch.float32).view(1, 3, 1, 1)
        # x_norm = x_uint8 * scale + bias  with scale = 1/(255 std), bias = -mean/std
        self.register_buffer("scale", 1.0 / (255.0 * std), persistent=False)
        self.register_buffer("bias", -mean / std, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_format == "uint8_nhwc":
            # cast before the transpose: TensorRT has no UInt8 Transpose
            x = x.to(torch.float32).permute(0, 3, 1, 2) * self.scale + self.bias
        logits = self.segmenter.forward_features(x).logits_low
        if self.output_resolution == "input":
            size = self.static_size if self.static_size is not None else x.shape[-2:]
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        if self.output == "probs":
            return torch.softmax(logits, dim=1)
        if self.output == "labels":
            return torch.argmax(logits, dim=1).to(torch.uint8)
        return logits


def output_size(segmenter: nn.Module, input_size: tuple[int, int], output_resolution: str) -> tuple[int, int]:
    """(h, w) of the output for an input of ``input_size``, measured by running the segmenter once."""
    if output_resolution == "input":
        return tuple(input_size)
    with torch.no_grad():
        out = segmenter.forward_features(torch.zeros(1, 3, *input_size)).logits_low
    return tuple(out.shape[-2:])
