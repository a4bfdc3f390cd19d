"""Room acoustics: ISO 3382-1 parameters of impulse responses, and the differentiable T60 proxy.

- :func:`analyze` -- EDT, T20, T30, C50, C80, D50, Ts per octave / one-third-octave band and
  broadband, DRR; vectorised over a batch ``(..., n_samples)``; returns :class:`AcousticParameters`.
  :class:`AnalysisConfig` holds every setting (``device="cuda"`` runs the FFT filter bank and the
  per-sample work in torch on a GPU).
- :func:`decay_time` -- a decay time over any evaluation range (e.g. the MATLAB ``irStats`` 0 to
  -60 dB definition).
- :func:`band_centres`, :func:`band_edges` -- IEC 61260-1 bands the sample rate supports.
- :func:`validate_ir` -- the input checks (empty, NaN/inf, all zeros, < 10 ms) as ``UserError``.
- :func:`t60p` -- the Image2Reverb T60 proxy on log-magnitude spectrograms (torch, differentiable).
"""

from i2r.acoustics.bands import band_centres, band_edges
from i2r.acoustics.decay import LundebySettings
from i2r.acoustics.parameters import (AcousticParameters, AnalysisConfig, analyze, decay_time,
                                      validate_ir)

__all__ = ["AcousticParameters", "AnalysisConfig", "LundebySettings", "analyze", "band_centres",
           "band_edges", "decay_time", "t60p", "validate_ir"]


def __getattr__(name):
    # torch is imported only when the proxy is used, so `i2r analyze` starts fast.
    if name == "t60p":
        from i2r.acoustics.proxy import t60p

        return t60p
    raise AttributeError(f"module 'i2r.acoustics' has no attribute {name!r}")
