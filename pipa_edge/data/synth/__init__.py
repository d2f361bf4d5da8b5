"""Embedded procedural sim→real generator: driving scenes in a *sim* and a *real-style* domain.

- :func:`generate` writes ``sim/``, ``real/``, ``sim_seq/``, ``real_seq/`` image/label folders and
  ``meta.json`` (``pipa-edge data synth OUT``).
- :class:`SynthDataset` reads them; :class:`SceneStream` is an endless moving scene (``test://``).

Modules: ``styles`` (domain statistics/appearance), ``world`` (scene layout), ``render``/``objects``
(projection and drawing), ``frame`` (one frame + camera effects), ``sequences`` (ego-motion),
``io`` (writing), ``dataset``, ``stream``.
"""

from __future__ import annotations

__all__ = ["GENERATOR_VERSION", "SceneStream", "SynthDataset", "generate", "render_frame", "sample_world"]


def __getattr__(name: str):  # lazy: importing the package stays cheap (CLI --help)
    if name in ("generate", "GENERATOR_VERSION"):
        from pipa_edge.data.synth import io
        return getattr(io, name)
    if name == "SynthDataset":
        from pipa_edge.data.synth.dataset import SynthDataset
        return SynthDataset
    if name == "SceneStream":
        from pipa_edge.data.synth.stream import SceneStream
        return SceneStream
    if name == "render_frame":
        from pipa_edge.data.synth.frame import render_frame
        return render_frame
    if name == "sample_world":
        from pipa_edge.data.synth.world import sample_world
        return sample_world
    raise AttributeError(f"module 'pipa_edge.data.synth' has no attribute '{name}'")
