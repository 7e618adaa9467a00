"""Pre-training, i.e. making θ0: supervised source training, self-supervised pretext training, source fingerprints,
import of public weights."""

from assft.pretrain.config import PretrainConfig
from assft.pretrain.fingerprint import (
    FINGERPRINT_FILE,
    compute_fingerprint,
    load_fingerprint,
    save_fingerprint,
)
from assft.pretrain.formats import IMPORT_FORMATS, ImportFormat, detect_format
from assft.models.genesis_net import GenesisUNet3D
from assft.pretrain.importer import ImportOutput, import_weights, read_weight_file
from assft.pretrain.pretext import (
    compute_inpainting_loss,
    compute_masked_input,
    compute_nt_xent,
    compute_rotation,
    make_cube_mask,
)
from assft.pretrain.pretraining import PretrainOutput, pretrain_ssl
from assft.pretrain.state import load_resume_state, resume_path
from assft.pretrain.supervised import TrainOutput, train_supervised
from assft.pretrain.trainer import PretextResult, fit_pretext

__all__ = [
    "FINGERPRINT_FILE",
    "IMPORT_FORMATS",
    "GenesisUNet3D",
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
