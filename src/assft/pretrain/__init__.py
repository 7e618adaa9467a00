"""Pre-training, i.e. making θ0: supervised source training, self-supervised pretext training, source fingerprints,
import of public weights.

Names load lazily (assft.utils.lazy): `import assft.pretrain.config` must not import torch and MONAI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from assft.utils.lazy import lazy_exports

_EXPORTS = {
    "assft.models.genesis_net": ("GenesisUNet3D",),
    "assft.pretrain.config": ("PretrainConfig",),
    "assft.pretrain.fingerprint": (
        "FINGERPRINT_FILE", "compute_fingerprint", "load_fingerprint", "save_fingerprint"
    ),
    "assft.pretrain.formats": ("IMPORT_FORMATS", "ImportFormat", "detect_format"),
    "assft.pretrain.importer": ("ImportOutput", "import_weights", "read_weight_file"),
    "assft.pretrain.pretext": (
        "compute_inpainting_loss", "compute_masked_input", "compute_nt_xent", "compute_rotation",
        "make_cube_mask"
    ),
    "assft.pretrain.pretraining": ("PretrainOutput", "pretrain_ssl"),
    "assft.pretrain.state": ("load_resume_state", "resume_path"),
    "assft.pretrain.supervised": ("TrainOutput", "train_supervised"),
    "assft.pretrain.trainer": ("PretextResult", "fit_pretext"),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # type checkers and IDEs see the real names
    from assft.models.genesis_net import GenesisUNet3D
    from assft.pretrain.config import PretrainConfig
    from assft.pretrain.fingerprint import FINGERPRINT_FILE, compute_fingerprint, load_fingerprint, save_fingerprint
    from assft.pretrain.formats import IMPORT_FORMATS, ImportFormat, detect_format
    from assft.pretrain.importer import ImportOutput, import_weights, read_weight_file
    from assft.pretrain.pretext import (
        compute_inpainting_loss, compute_masked_input, compute_nt_xent, compute_rotation, make_cube_mask,
    )
    from assft.pretrain.pretraining import PretrainOutput, pretrain_ssl
    from assft.pretrain.state import load_resume_state, resume_path
    from assft.pretrain.supervised import TrainOutput, train_supervised
    from assft.pretrain.trainer import PretextResult, fit_pretext
