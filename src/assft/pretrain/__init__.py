"""Pre-training, i.e. making θ0: supervised source training, self-supervised pretext training, source fingerprints,
import of public weights.

Names load lazily (assft.utils.lazy): `import assft.pretrain.config` must not import torch and MONAI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from assft.utils.lazy import lazy_exports

__all__ = [
    "FINGERPRINT_FILE",
    "GenesisUNet3D",
    "IMPORT_FORMATS",
    "ImportFormat",
    "ImportOutput",
    "PretextResult",
    "PretrainConfig",
    "PretrainOutput",
    "TrainOutput",
    "compute_fingerprint",
    "compute_inpainting_loss",
    "compute_masked_input",
    "compute_nt_xent",
    "compute_rotation",
    "detect_format",
    "fit_pretext",
    "import_weights",
    "load_fingerprint",
    "load_resume_state",
    "make_cube_mask",
    "pretrain_ssl",
    "read_weight_file",
    "resume_path",
    "save_fingerprint",
    "train_supervised",
]

_HOMES = {
    "FINGERPRINT_FILE": "assft.pretrain.fingerprint",
    "GenesisUNet3D": "assft.models.genesis_net",
    "IMPORT_FORMATS": "assft.pretrain.formats",
    "ImportFormat": "assft.pretrain.formats",
    "ImportOutput": "assft.pretrain.importer",
    "PretextResult": "assft.pretrain.trainer",
    "PretrainConfig": "assft.pretrain.config",
    "PretrainOutput": "assft.pretrain.pretraining",
    "TrainOutput": "assft.pretrain.supervised",
    "compute_fingerprint": "assft.pretrain.fingerprint",
    "compute_inpainting_loss": "assft.pretrain.pretext",
    "compute_masked_input": "assft.pretrain.pretext",
    "compute_nt_xent": "assft.pretrain.pretext",
    "compute_rotation": "assft.pretrain.pretext",
    "detect_format": "assft.pretrain.formats",
    "fit_pretext": "assft.pretrain.trainer",
    "import_weights": "assft.pretrain.importer",
    "load_fingerprint": "assft.pretrain.fingerprint",
    "load_resume_state": "assft.pretrain.state",
    "make_cube_mask": "assft.pretrain.pretext",
    "pretrain_ssl": "assft.pretrain.pretraining",
    "read_weight_file": "assft.pretrain.importer",
    "resume_path": "assft.pretrain.state",
    "save_fingerprint": "assft.pretrain.fingerprint",
    "train_supervised": "assft.pretrain.supervised",
}

__getattr__, __dir__ = lazy_exports(__name__, _HOMES)

if TYPE_CHECKING:  # type checkers and IDEs see the real names
    from assft.models.genesis_net import GenesisUNet3D
    from assft.pretrain.config import PretrainConfig
    from assft.pretrain.fingerprint import FINGERPRINT_FILE, compute_fingerprint, load_fingerprint, save_fingerprint
    from assft.pretrain.formats import IMPORT_FORMATS, ImportFormat, detect_format
    from assft.pretrain.importer import ImportOutput, import_weights, read_weight_file
    from assft.pretrain.pretext import compute_inpainting_loss, compute_masked_input, compute_nt_xent, compute_rotation, make_cube_mask
    from assft.pretrain.pretraining import PretrainOutput, pretrain_ssl
    from assft.pretrain.state import load_resume_state, resume_path
    from assft.pretrain.supervised import TrainOutput, train_supervised
    from assft.pretrain.trainer import PretextResult, fit_pretext
