"""assft: active source-free adaptation of 3D medical segmentation foundation models."""

__version__ = "0.1.0"
