"""``pipa-edge`` entry point: a thin dispatcher over per-command modules.

Each command lives in ``pipa_edge/cli/<name>.py`` with ``add_parser(subparsers)`` (argparse only,
cheap to import) and ``run(args) -> int`` (imports the heavy stage code lazily and calls its
Python API). A :class:`~pipa_edge.errors.PipaError` becomes one red line on stderr and exit 2.
"""

from __future__ import annotations

import os  # noqa: I001 - the wait policy must be in the environment before anything loads torch

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # = pipa_edge.threads.init_env(), before any import

import argparse  # noqa: E402
import importlib  # noqa: E402
import sys  # noqa: E402

from pipa_edge import __version__  # noqa: E402

# command name -> module under pipa_edge.cli (order = order in --help)
COMMANDS = ("demo", "data", "train", "eval", "adabn", "adapt_bn", "export", "run", "bench", "collect")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pipa-edge",
        description="PiPa++ domain adaptation → ONNX/TensorRT export → GStreamer video segmentation on Jetson.")
    p.add_argument("--version", action="version", version=f"pipa-edge {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"pipa_edge.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"pipa_edge.cli.{name}":
                continue  # command not built yet
            raise
        mod.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from pipa_edge.errors import PipaError
    from pipa_edge.log import error_line

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        rc = args.func(args)
    except PipaError as e:
        error_line(str(e))
        return e.exit_code
    except ModuleNotFoundError as e:  # a device install (no torch) running a workstation command
        from pipa_edge.cli.workstation import workstation_line

        line = workstation_line(e, getattr(args, "command", None))
        if line is None:
            raise
        error_line(line)
        return 2
    except KeyboardInterrupt:
        error_line("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # a full disk / read-only folder that no write site caught: still one line
        from pipa_edge.fileio import machine_oserror, write_error

        os_err = machine_oserror(e)
        if os_err is None:
            raise
        err = write_error(os_err.filename or "an output file", e, kept="files written before are complete "
                          "(each is written atomically)")
        error_line(str(err))
        return err.exit_code
    return int(rc or 0)


def entry() -> None:  # pragma: no cover
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
