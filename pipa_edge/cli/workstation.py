"""Which commands need the workstation install, and the one line a device install prints for them.

The base install (``pip install 'pipa-edge[device]'``) has no torch: ``run``, ``bench`` (of exported
files), ``collect`` and ``export MODEL.onnx --format engine|openvino`` work there. ``train``,
``eval``/``adabn``/``export`` of a ``.pt`` checkpoint, ``demo`` and arch-name benchmarks need the
``train`` extra. When one of its modules is missing, :func:`workstation_line` turns the
``ModuleNotFoundError`` into one line (``cli/main.py`` prints it and exits 2).
"""

from __future__ import annotations

# top-level modules of the `train` extra (pyproject.toml) that the device install lacks
WORKSTATION_MODULES = ("torch", "torchvision", "segmentation_models_pytorch", "onnxsim", "onnxscript",
                       "matplotlib")
INSTALL = "pip install 'pipa-edge[train]'"


def missing_workstation_module(exc: BaseException) -> str | None:
    """The workstation module whose absence raised ``exc``, else ``None``."""
    name = getattr(exc, "name", None) or ""
    root = name.split(".")[0]
    return root if isinstance(exc, ModuleNotFoundError) and root in WORKSTATION_MODULES else None


def workstation_line(exc: BaseException, command: str | None) -> str | None:
    """``pipa-edge train: needs the workstation install (torch is not installed): pip install …``."""
    mod = missing_workstation_module(exc)
    if mod is None:
        return None
    what = f"pipa-edge {command}" if command else "pipa-edge"
    return f"{what}: needs the workstation install ({mod} is not installed here): {INSTALL}"
