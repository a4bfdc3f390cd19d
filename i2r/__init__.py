"""i2r: photograph of a space -> its room impulse response, and the tools to measure it.

Subpackages show the architecture: ``i2r.acoustics`` (ISO 3382-1 parameters, T60 proxy),
``i2r.models`` (encoder, depth, generator, discriminator), ``i2r.data`` (paired data sets,
synthetic rooms), ``i2r.analysis`` (ablations, Grad-CAM, t-SNE grid), ``i2r.survey``
(listening study). ``i2r.cli`` is the thin command-line front end.
"""

__version__ = "0.1.0"
