"""PyTorch backend: runs the plain segmenter of a pipa-edge checkpoint (eager, no export).

It wraps the model in :class:`pipa_edge.models.graph.DeployModel`, the same module that is
exported, so its outputs are the reference for every parity check.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipa_edge.errors import BackendUnavailable
from pipa_edge.runtime.backends.base import Backend, ModelMeta


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, path: str | Path | None = None, *, segmenter=None, input_size: tuple[int, int] = (512, 1024),
                 output: str = "logits", output_resolution: str = "input", device: str = "cpu",
                 input_format: str = "float_nchw", threads: int | None = None, **_ignored):
        import torch

        from pipa_edge.models.graph import DeployModel
        from pipa_edge.models.io import load_segmenter

        if segmenter is None:
            if path is None:
                raise ValueError("TorchBackend needs a checkpoint path or a segmenter")
            segmenter = load_segmenter(path)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable("torch backend: device 'cuda' asked but torch sees no CUDA GPU")
        if threads:
            torch.set_num_threads(int(threads))
        self.path = Path(path) if path is not None else None
        self.device = device
        self._torch = torch
        self.model = DeployModel(segmenter, input_format=input_format, output=output,
                                 output_resolution=output_resolution).to(device).eval()
        self.meta = ModelMeta(classes=segmenter.classes, input_size=tuple(int(v) for v in input_size),
                              mean=tuple(segmenter.mean), std=tuple(segmenter.std), input_format=input_format,
                              output=output, output_resolution=output_resolution, precision="fp32",
                              extra={"arch": segmenter.arch, "output_stride": segmenter.output_stride,
                                     "source": str(path) if path is not None else None})

    def infer(self, frames: np.ndarray) -> np.ndarray:
        torch = self._torch
        x = torch.from_numpy(self.preprocess(frames)).to(self.device)
        with torch.inference_mode():
            y = self.model(x)
        return y.cpu().numpy()

    def close(self) -> None:
        self.model = None
