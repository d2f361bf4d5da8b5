"""pipa-edge: PiPa++ domain adaptation for compact segmenters, from training to Jetson video."""

__version__ = "0.1.0"

from pipa_edge import threads as _threads  # noqa: E402

_threads.init_env()  # OMP_WAIT_POLICY=PASSIVE before torch loads libgomp (see pipa_edge/threads.py)
