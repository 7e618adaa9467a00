"""Source fingerprint for pre-trained checkpoints: the one implementation lives in `assft.query.fingerprint`.

Format (stored in Checkpoint.fingerprint and in `fingerprint.json` beside the checkpoint):
`{layer_name: {"mean": [float, ...], "var": [float, ...]}}`, one entry per channel. Per-case moments of every norm
layer's input come from one sliding-window pass and are pooled with voxel-count weights by the law of total
variance; the segmentation head's norm layers are left out (the head is replaced when fine-tuning).
"""

from __future__ import annotations

from assft.query.fingerprint import (
    Fingerprint,
    compute_fingerprint,
    load_fingerprint,
    save_fingerprint,
)
from assft.query.fingerprint import source_layers as fingerprint_layers

FINGERPRINT_FILE = "fingerprint.json"

__all__ = ["FINGERPRINT_FILE", "Fingerprint", "compute_fingerprint", "fingerprint_layers", "load_fingerprint",
           "save_fingerprint"]
