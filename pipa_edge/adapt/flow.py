"""Dense optical flow on torch tensors: batched backward warping, flow resizing, flow for a batch.

Same convention as :mod:`pipa_edge.data.flow` (flow files, NumPy warping, providers): for a frame
pair ``(t, t-k)`` the flow is **t → t-k**, here ``(B, 2, H, W)`` with channel 0 = dx, 1 = dy, so
``warp_torch(pred_{t-k}, F)`` brings the older frame onto frame t's grid.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from pipa_edge.data.flow import DISFlow, FlowProvider

# ----------------------------------------------------------------------------------- warping


def flow_grid(flow: torch.Tensor) -> torch.Tensor:
    """``(B, 2, H, W)`` pixel flow → ``grid_sample`` grid ``(B, H, W, 2)`` (``align_corners=True``)."""
    b, _, h, w = flow.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=flow.device, dtype=flow.dtype),
                            torch.arange(w, device=flow.device, dtype=flow.dtype), indexing="ij")
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    return torch.stack([gx, gy], dim=-1)


def warp_torch(x: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Backward warp ``x (B, C, H, W)`` with ``flow (B, 2, H, W)`` (zeros outside). Differentiable."""
    return F.grid_sample(x, flow_grid(flow.to(x.dtype)), mode=mode, padding_mode="zeros", align_corners=True)


def resize_flow_torch(flow: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """``(B, 2, H, W)`` → ``(B, 2, h, w)`` (area average when shrinking) with rescaled vectors."""
    h0, w0 = flow.shape[-2:]
    h, w = int(size_hw[0]), int(size_hw[1])
    if (h, w) == (h0, w0):
        return flow
    mode = "area" if h <= h0 and w <= w0 else "bilinear"
    out = F.interpolate(flow, size=(h, w), mode=mode, **({} if mode == "area" else {"align_corners": False}))
    scale = torch.tensor([w / w0, h / h0], device=flow.device, dtype=flow.dtype).view(1, 2, 1, 1)
    return out * scale


# ------------------------------------------------------------------------------- batches


def batch_flow(img_t: torch.Tensor, img_prev: torch.Tensor, provider: Optional[FlowProvider] = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Flow for a batch of uint8 ``(B, 3, H, W)`` pairs → ``flow (B, 2, H, W)``, ``valid (B, H, W)``."""
    provider = provider or DISFlow("medium")
    a = img_t.detach().to("cpu", torch.uint8).permute(0, 2, 3, 1).numpy()
    b = img_prev.detach().to("cpu", torch.uint8).permute(0, 2, 3, 1).numpy()
    flows, valids = zip(*(provider(a[i], b[i]) for i in range(a.shape[0])))
    flow = torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).contiguous()
    valid = torch.from_numpy(np.stack(valids))
    return flow.to(img_t.device), valid.to(img_t.device)
