"""Source fingerprint for pre-trained checkpoints: computed here, validated and resolved by `assft.models.source_stats`.

Format (stored in Checkpoint.fingerprint and in `fingerprint.json` beside the checkpoint):
`{layer_name: {"mean": [float, ...], "var": [float, ...]}}`, one entry per channel. Per-case moments of every norm
layer's input come from one sliding-window pass and are pooled with voxel-count weights by the law of total
variance; the segmentation head's norm layers are left out (the head is replaced when fine-tuning).
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from assft.config import InferenceConfig, ModelConfig, PreprocessConfig
from assft.data.cases import Case
from assft.errors import ConfigError
from assft.inference.reducers import ChannelMoments
from assft.models.source_stats import Fingerprint, load_fingerprint, save_fingerprint, source_layers
from assft.models.source_stats import source_layers as fingerprint_layers

FINGERPRINT_FILE = "fingerprint.json"

__all__ = ["FINGERPRINT_FILE", "Fingerprint", "compute_fingerprint", "fingerprint_layers", "load_fingerprint",
           "save_fingerprint"]


def compute_fingerprint(model: nn.Module, cases: Iterable[Case], preprocess: PreprocessConfig,
                        inference: InferenceConfig, *, model_config: ModelConfig | None = None,
                        show_progress: bool | None = None) -> Fingerprint:
    """Channel moments of every norm layer's input over the source `cases` -> {layer: {"mean", "var"}}; with
    `model_config`, the segmentation head's norm layers are left out (see `source_layers`).

    Per-case moments come from `run_pass(norm_layers=...)` (the same `ChannelMoments` reducer as the target KD); they
    are pooled with voxel-count weights (float64 sums: the law of total variance), as if all source voxels were one
    sample.
    """
    from assft.inference.predict import iter_loaded, prepare_model, run_pass
    from assft.utils.progress import progress

    model = prepare_model(model, inference)
    layers = source_layers(model, model_config)
    if not layers:
        raise ConfigError("the network has no normalisation layers, so there is nothing to fingerprint.",
                          fix="KD needs a network with BatchNorm/InstanceNorm/GroupNorm/LayerNorm layers")
    pooled = {name: ChannelMoments() for name in layers}
    n_cases = 0
    for loaded in progress(iter_loaded(cases, preprocess), "Fingerprinting", enabled=show_progress):
        result = run_pass(model, loaded.image, inference, norm_layers=layers)
        weight = float(loaded.image[0].size)
        for name, (mean, var) in (result.norm_moments or {}).items():
            pooled[name].add_moments(weight, mean, var)
        n_cases += 1
    if n_cases == 0:
        raise ConfigError("no source images to fingerprint.", fix="pass a folder with source images")
    fingerprint = {}
    for name, acc in pooled.items():
        mean, var = acc.result()
        fingerprint[name] = {"mean": mean.tolist(), "var": var.tolist()}
    return fingerprint
