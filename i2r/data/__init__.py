"""Paired image/IR data sets: reading, preparing and synthesising them.

- :mod:`.datasets` -- :class:`~i2r.data.datasets.PairedDataset`, the torch data set over either
  format below, skipping (and listing) bad files.
- :mod:`.manifest` -- the manifest CSV format (``image, ir, split, scene`` + optional columns),
  with cell validation that names the line.
- :mod:`.pix2pix` -- the original code's folder layout (``train_A/`` images, ``train_B/`` wavs).
- :mod:`.images` -- image and depth-map decoding, centre-crop and resize.
- :mod:`.panorama` -- rectilinear views cut out of 360-degree equirectangular images.
- :mod:`.prepare` -- ``i2r prepare``: raw folders -> a ready data set.
- :mod:`.synthetic` -- ``i2r synth``: the built-in synthetic rooms.
"""
