"""Analyses of trained models: ablations (``ablations``), Grad-CAM with SSIM, the t-SNE grid."""
