"""pipa-edge: PiPa++ domain adaptation for compact segmenters, from training to Jetson video."""

__version__ = "0.1.0"
