"""`AssftScoring`: MONAI Label's scoring method running assft's one pass over the datastore (needs the extra)."""

from __future__ import annotations

from typing import Any

from monailabel.interfaces.tasks.scoring import ScoringMethod

from assft.integrations.monailabel.state import AppState, score_images


class AssftScoring(ScoringMethod):
    """Score every image the current model has not scored yet (KD, ASD, embedding, ...), then rank the unlabeled
    ones and store Q, DKD, KD, Div and ASD in each image's info under "assft"."""

    def __init__(self, state: AppState) -> None:
        super().__init__("assft: one pass per image with the current model (KD, ASD, embedding); Q, DKD, Div "
                         "against the labeled images")
        self.state = state

    def __call__(self, request: dict[str, Any], datastore: Any) -> dict[str, Any]:
        return score_images(self.state, datastore, force=bool(request.get("force", False)))
