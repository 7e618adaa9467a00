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
                        inference: InferenceConfig, *, model_config: ModelConfig | None = None) -> Fingerprint:
    """Channel moments of every norm layer's input over the source `cases` -> {layer: {"mean", "var"}}; with
    `model_config`, the segmentation head's norm layers are left out (see `source_layers`).

    Per-case moments come from the pass engine's hooks (the same `ChannelMoments` reducer as the target KD, windows of
    several volumes per forward call); they are pooled with voxel-count weights (float64 sums: the law of total
    variance), as if all source voxels were one sample.
    """
    from assft.inference.engine import hooks_only_predictor, iter_windows_pass
    from assft.inference.predict import iter_loaded, prepare_model
    from assft.inference.reducers import Routing, hooked_moments
    from assft.utils.progress import progress

    model = prepare_model(model, inference)
    layers = source_layers(model, model_config)
    if not layers:
        raise ConfigError("the network has no normalisation layers, so there is nothing to fingerprint.",
                          fix="KD needs a network with BatchNorm/InstanceNorm/GroupNorm/LayerNorm layers")
    pooled = {name: ChannelMoments() for name in layers}
    n_cases = 0
    routing = Routing(open=False)
    volumes = progress(iter_loaded(cases, preprocess), "Fingerprinting")
    with hooked_moments(layers, routing) as per_case:
        for loaded, _, slot in iter_windows_pass(model, volumes, lambda case: case.image, inference,
                                                 predictor=hooks_only_predictor(model, inference.channels_last, layers),
                                                 routing=routing, reducers=list(per_case.values())):
            weight = float(loaded.image[0].size)
            for name, reducer in per_case.items():
                pooled[name].add_moments(weight, *reducer.result(slot))
            n_cases += 1
    if n_cases == 0:
        raise ConfigError("no source images to fingerprint.", fix="pass a folder with source images")
    fingerprint = {}
    for name, acc in pooled.items():
        mean, var = acc.result()
        fingerprint[name] = {"mean": mean.tolist(), "var": var.tolist()}
    return fingerprint
