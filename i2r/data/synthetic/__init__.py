"""Synthetic rooms: the built-in paired data set (image, depth, IR) with exact ground truth.

- :mod:`.materials` absorption coefficients (Vorländer's annex via pyroomacoustics) and
  ISO 9613-1 air absorption;
- :mod:`.scene` random shoebox rooms (booth to cathedral) and outdoor scenes, Eyring T60;
- :mod:`.render` NumPy ray casting of the camera view and its depth map (``render.render``);
- :mod:`.ir` image sources plus an Eyring-decaying tail per octave band;
- :mod:`.dataset` the ``i2r synth`` writer (manifest CSV, resumable, deterministic by seed).
"""

from i2r.data.synthetic.dataset import MANIFEST_COLUMNS, SynthConfig, SynthSummary, generate, make_example
from i2r.data.synthetic.ir import IRConfig, synthesize_ir
from i2r.data.synthetic.render import DEPTH_MAX_M, RenderConfig
from i2r.data.synthetic.scene import Scene, draw_scene, eyring_t60

__all__ = [
    "DEPTH_MAX_M", "IRConfig", "MANIFEST_COLUMNS", "RenderConfig", "Scene", "SynthConfig", "SynthSummary",
    "draw_scene", "eyring_t60", "generate", "make_example", "synthesize_ir",
]
