"""CPU thread control for the heavy commands (``train``, ``demo``, ``eval``, ``adabn``, ``export``).

Two settings keep a CPU job from collapsing when another process uses the same cores:

* **a passive OpenMP wait policy** (``OMP_WAIT_POLICY=PASSIVE``): torch's OpenMP threads sleep
  at the end of a parallel region instead of spinning on a core; spinning threads steal the core
  from the other process's working threads, and every OpenMP barrier then waits for a thread that
  is not scheduled (iterations 6-70× slower beside one competitor instead of ~2×). libgomp reads
  the variable once, when it is loaded (on ``import torch``), so :func:`init_env` must run
  before that: the CLI does it at the top of ``pipa_edge.cli.main``, and ``import pipa_edge``
  does it too (a Python user who imports torch first keeps the library default);
* **an explicit intra-op thread count** (``--threads N`` / ``threads:`` in a train recipe); the
  default is ``OMP_NUM_THREADS`` when set, else the CPUs this process may run on.

``bench/contention.py`` measures both (docs/runtime.md). A user's own ``OMP_WAIT_POLICY`` is
never overridden.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY = "PASSIVE"
_state = {"env_in_time": None}


def init_env() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless already set; True when torch was not loaded yet (in time)."""
    os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)
    if _state["env_in_time"] is None:
        _state["env_in_time"] = "torch" not in sys.modules
    return bool(_state["env_in_time"])


def usable_cpus() -> int:
    """CPUs this process may run on (affinity / cgroup cpuset), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when it is a positive integer, else :func:`usable_cpus`."""
    raw = os.environ.get("OMP_NUM_THREADS", "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return usable_cpus()


def resolve(threads: int | None, where: str = "--threads") -> int:
    """The thread count to use: ``threads`` (validated) or :func:`default_threads`."""
    from pipa_edge.errors import ConfigError

    if threads is None or threads == 0:
        return default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ConfigError(f"{where}: '{threads}' must be a positive number of threads (0 = default)")
    return threads


def set_threads(threads: int | None = None, where: str = "--threads", use_torch: bool = True) -> int:
    """Apply the intra-op thread count to torch (imported here) and return it. ``use_torch=False``
    (torch-free device routes): only ``OMP_NUM_THREADS`` is set, which the ONNX Runtime /
    OpenVINO backends read, and only when ``threads`` is given."""
    n = resolve(threads, where)
    init_env()  # harmless when late: documents the policy for child processes
    if not use_torch:
        if threads:
            os.environ["OMP_NUM_THREADS"] = str(n)
        return n
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def describe() -> str:
    """``2 threads, OpenMP wait PASSIVE`` (for a stage log line)."""
    t = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else default_threads()
    return f"{t} thread{'s' if t != 1 else ''}, OpenMP wait {os.environ.get('OMP_WAIT_POLICY', 'library default')}"
