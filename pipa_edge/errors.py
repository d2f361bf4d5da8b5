"""User-facing errors.

Anything a user can cause (a bad path, key, URI or model file) raises :class:`PipaError` with a
one-line message that names the offending file/key/URI. The CLI prints it without a traceback and
exits with code 2. Programming errors stay ordinary exceptions.
"""

from __future__ import annotations


class PipaError(Exception):
    """A problem with the user's input: printed as one line, exit code 2."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        msg = self.args[0] if self.args else ""
        return f"{msg} ({self.hint})" if self.hint else msg


class ConfigError(PipaError):
    """A config file or --set override is invalid; the message names the key."""


class DataError(PipaError):
    """A dataset folder/file is missing or malformed; the message names the path."""


class ModelFileError(PipaError):
    """A checkpoint/ONNX/engine file is missing, truncated, corrupt or mismatched."""


class BackendUnavailable(PipaError):
    """A backend/toolkit (TensorRT, CUDA, OpenVINO, GStreamer) is not installed or has no device."""


class SourceError(PipaError):
    """A source/sink URI is invalid or cannot be opened."""


class WriteError(PipaError):
    """A file cannot be written (disk full, no permission, read-only file system); the message
    names the path and what was kept. Raised by :func:`pipa_edge.fileio.guard_write`."""

    def __init__(self, message: str, *, path: str = "", reason: str = ""):
        super().__init__(message)
        self.path, self.reason = path, reason
