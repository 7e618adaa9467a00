"""`AssftStrategy`: MONAI Label's "next sample" by an assft strategy (needs the extra)."""

from __future__ import annotations

import logging
import time
from typing import Any

from monailabel.interfaces.tasks.strategy import Strategy

from assft.integrations.monailabel.state import (
    AppState,
    model_version,
    rank_images,
    record_of,
    score_images,
    served_recently,
)

logger = logging.getLogger(__name__)


class AssftStrategy(Strategy):
    """The next image to annotate by an assft strategy (`assft`, `fg-random`, `clasp-pe`).

    Diversity is measured against the labeled images *and* the images served in the last `serve_reset_s` seconds
    (MONAI Label records each serve), and served images are not served again in that time: two annotators asking
    in turn get different, complementary volumes. Images the current model has not scored yet are scored first.
    """

    def __init__(self, state: AppState, name: str) -> None:
        super().__init__(f"assft query strategy '{name}' (Q = α·DKD + (1-α)·ASD for assft)")
        self.state = state
        self.name = name

    def info(self) -> dict[str, Any]:
        """Shown by 3D Slicer: the description and the options (α, the strategy)."""
        return {"description": self.description, "strategy": self.name, "config": self.config(),
                "serve_reset_s": self.state.config.serve_reset_s}

    def config(self) -> dict[str, Any]:
        """The options a request may change: α (assft's weight of DKD against ASD)."""
        return {"alpha": self.state.config.query.alpha}

    def __call__(self, request: dict[str, Any], datastore: Any) -> dict[str, Any] | None:
        unlabeled = datastore.get_unlabeled_images()
        if not unlabeled:
            return None
        if _stale(self.state, datastore, unlabeled):
            score_images(self.state, datastore)
        served = served_recently(datastore, unlabeled, self.state.config.serve_reset_s)
        if len(served) == len(unlabeled):  # everything was served recently: rank them all again
            served = []
        reference = list(datastore.get_labeled_images()) + served
        ranking = rank_images(self.state, datastore, self.name, reference=reference, budget=1,
                              alpha=_alpha(request.get("alpha")))
        if not ranking.selected:
            return None
        image_id = ranking.selected[0]
        scores = ranking.scores[image_id]
        record = record_of(datastore, image_id)
        logger.info(f"assft next sample ({self.name}): {image_id} {scores}; {ranking.rationale.get(image_id, '')}")
        return {"id": image_id, "strategy": self.name, "scores": scores,
                "rationale": ranking.rationale.get(image_id, ""), "model": record.get("model"),
                "model_version": record.get("model_version"), "reference": ranking.reference,
                "served_at": int(time.time())}


def _alpha(value: Any) -> float | None:
    """A request's α (Slicer sends the configured one back), checked like QueryConfig checks it."""
    if value is None:
        return None
    from monailabel.interfaces.exception import MONAILabelError, MONAILabelException

    try:
        alpha = float(value)
    except (TypeError, ValueError):
        alpha = float("nan")
    if not 0.0 <= alpha <= 1.0:
        raise MONAILabelException(MONAILabelError.INVALID_INPUT, f"alpha must be a number in [0, 1], got {value!r}")
    return alpha


def _stale(state: AppState, datastore: Any, images: list[str]) -> bool:
    """Whether an image lacks a summary from the current model."""
    version = model_version(state.current_model())
    return any(record_of(datastore, i).get("model_version") != version for i in images)
