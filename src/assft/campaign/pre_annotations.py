"""What the annotator gets beside each pick: the current model's label map to correct (a pre-annotation, as MONAI
Label and clinical tools hand out) and the picture of why it was picked.

rNNN/to_annotate/pre_annotations/ID.nii.gz is the label map `assft predict` writes for the image with the model
that scored the round: on the image's own grid and affine, named as `import-labels` expects, so a corrected copy of
the folder (or the folder itself) is what goes back in. rNNN/to_annotate/why/NN_ID.png is the pick's query figure.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from assft.campaign.layout import QUERY_DIR, TO_ANNOTATE
from assft.config import InferenceConfig
from assft.data.cases import DatasetSpec
from assft.query.result import FIGURES_DIR

__all__ = ["PRE_ANNOTATIONS", "WHY", "copy_pick_figures", "predict_label_maps", "write_pre_annotations"]

PRE_ANNOTATIONS = "pre_annotations"
WHY = "why"


def write_pre_annotations(model: str | Path, pool: DatasetSpec, case_ids: Sequence[str], round_folder: Path,
                          inference: InferenceConfig | None = None) -> str | None:
    """A round's hand-out beside the images in to_annotate/: `model`'s label map per pick in pre_annotations/ and
    the pick's query figure in why/ (when the round drew figures). Returns the pre-annotation folder relative to
    the round's (the ledger records it), or None for a model without a segmentation head."""
    folder = round_folder / TO_ANNOTATE
    written = predict_label_maps(model, pool, case_ids, folder / PRE_ANNOTATIONS, inference)
    copy_pick_figures(round_folder / QUERY_DIR / FIGURES_DIR, case_ids, folder / WHY)
    return f"{TO_ANNOTATE}/{PRE_ANNOTATIONS}" if written else None


def predict_label_maps(model: str | Path, pool: DatasetSpec, case_ids: Sequence[str], folder: Path,
                       inference: InferenceConfig | None = None) -> list[Path]:
    """The label map of each case predicted by `model`, written as folder/ID.nii.gz (uint8, the image's grid and
    affine: the same file `assft predict` writes); none for a model without a segmentation head (SSL-only).
    Predicting the picks again costs one pass over b volumes; the query pass keeps no probability volume."""
    from assft.inference.predict import predict_to_folder
    from assft.models.checkpoint import build_from_checkpoint

    net, ckpt, _ = build_from_checkpoint(model)
    if ckpt.kind == "ssl-only":
        return []
    inference = inference or ckpt.inference_config()  # `assft predict`'s window when the campaign sets none
    return predict_to_folder(net, [pool.get(c) for c in case_ids], ckpt.preprocess, inference, folder)


def copy_pick_figures(figures: Path, case_ids: Sequence[str], folder: Path) -> list[Path]:
    """Copy each pick's query figure (figures/NN_ID.png) into `folder`, so the annotator finds it beside the image."""
    copied = []
    for rank, case_id in enumerate(case_ids, start=1):
        source = figures / f"{rank:02d}_{case_id}.png"
        if source.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            copied.append(Path(shutil.copyfile(source, folder / source.name)))
    return copied
