"""Pre-training, i.e. making θ0: supervised source training, self-supervised pretext training, source fingerprints,
import of public weights.

Names load lazily (assft.utils.lazy): `import assft.pretrain.config` must not import torch and MONAI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from assft.utils.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "PretrainConfig": "assft.pretrain.config",
    "FINGERPRINT_FILE": "assft.pretrain.fingerprint", "compute_fingerprint": "assft.pretrain.fingerprint",
    "load_fingerprint": "assft.pretrain.fingerprint", "save_fingerprint": "assft.pretrain.fingerprint",
    "IMPORT_FORMATS": "assft.pretrain.formats", "ImportFormat": "assft.pretrain.formats",
    "detect_format": "assft.pretrain.formats", "ImportOutput": "assft.pretrain.importer",
    "import_weights": "assft.pretrain.importer", "read_weight_file": "assft.pretrain.importer",
    "compute_inpainting_loss": "assft.pretrain.pretext", "compute_masked_input": "assft.pretrain.pretext",
    "compute_nt_xent": "assft.pretrain.pretext", "compute_rotation": "assft.pretrain.pretext",
    "make_cube_mask": "assft.pretrain.pretext", "PretrainOutput": "assft.pretrain.pretraining",
    "pretrain_ssl": "assft.pretrain.pretraining", "load_resume_state": "assft.pretrain.state",
    "resume_path": "assft.pretrain.state", "TrainOutput": "assft.pretrain.supervised",
    "train_supervised": "assft.pretrain.supervised", "PretextResult": "assft.pretrain.trainer",
    "fit_pretext": "assft.pretrain.trainer",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # type checkers and IDEs see the real names
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
