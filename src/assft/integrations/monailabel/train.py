"""`AssftTrain`: MONAI Label's train task running one round of SSFT (needs the extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monailabel.interfaces.datastore import DefaultLabelTag
from monailabel.interfaces.exception import MONAILabelError, MONAILabelException
from monailabel.interfaces.tasks.train import TrainTask

from assft.errors import AssftError
from assft.integrations.monailabel.rounds import run_round
from assft.integrations.monailabel.state import AppState, score_images


class AssftTrain(TrainTask):
    """Selective semi-supervised fine-tuning on the datastore's final labels (L) and the reliable pseudo-labels of
    the unlabeled images (R): one round of the app's campaign. The new checkpoint is what the infer task serves and
    what the next scoring and "next sample" use; the images are re-scored with it before the request returns.

    Implemented on MONAI Label's minimal `TrainTask` interface rather than the Ignite-based `BasicTrainTask`: the
    round is assft's own `finetune_round` (L and R, the reliability filter, the compute budget), not a second
    training loop; `BasicTrainTask.pre_process`'s job (L from the final labels, R from pseudo-labels) is done there.
    """

    def __init__(self, state: AppState) -> None:
        super().__init__("assft SSFT: fine-tune on the final labels and the reliable pseudo-labels (one round)")
        self.state = state

    def config(self) -> dict[str, Any]:
        finetune = self.state.config.finetune
        return {"ssft": finetune.pseudo.reliability != "none", "reliability": finetune.pseudo.reliability,
                "steps_per_round": finetune.steps_per_round or finetune.train.steps + finetune.ssft_steps}

    def stats(self) -> dict[str, Any]:
        """The last round of the app's campaign (MONAI Label shows it as the train stats)."""
        from assft.campaign.ledger import LEDGER_NAME, Ledger

        if not (self.state.campaign_dir / LEDGER_NAME).exists():
            return {"rounds": 0}
        ledger = Ledger.load(self.state.campaign_dir)
        last = ledger.last()
        return {"rounds": len(ledger.records()), "labeled_total": len(ledger.labeled_ids()),
                "status": last.status if last else None, "checkpoint": last.checkpoint if last else None,
                "pseudo_labels_used": sum(1 for p in (last.pseudo_labels if last else []) if p.get("selected"))}

    def __call__(self, request: dict[str, Any], datastore: Any) -> dict[str, Any]:
        labeled = datastore.get_labeled_images()
        if not labeled:
            raise MONAILabelException(MONAILabelError.INVALID_INPUT,
                                      "no image has a final label yet: save at least one label, then train")
        label_dir = Path(datastore.get_label_uri(labeled[0], DefaultLabelTag.FINAL)).parent
        try:
            record = run_round(self.state, datastore, label_dir)
        except AssftError as exc:
            raise MONAILabelException(MONAILabelError.INVALID_INPUT, str(exc)) from exc
        scoring = score_images(self.state, datastore)
        return {"round": record.get("round"), "checkpoint": record.get("checkpoint"),
                "labeled": len(labeled), "message": record["status_message"], "scoring": scoring}
