"""`AssftApp`: the MONAI Label app (generated folders import it from their main.py; needs the extra)."""

from __future__ import annotations

from typing import Any

from monailabel.interfaces.app import MONAILabelApp

from assft.integrations.monailabel.config import APP_STRATEGIES
from assft.integrations.monailabel.generator import read_class_names
from assft.integrations.monailabel.infer import AssftInfer
from assft.integrations.monailabel.scoring import AssftScoring
from assft.integrations.monailabel.state import AppState
from assft.integrations.monailabel.strategy import AssftStrategy
from assft.integrations.monailabel.train import AssftTrain
from assft.utils.provenance import versions

MODEL_NAME = "assft"  # the name of the infer task and of the train task in MONAI Label's API


class AssftApp(MONAILabelApp):
    """One model ("assft": infer + train), the strategies of `APP_STRATEGIES` and the "assft" scoring method.

    MONAI Label's own auto-scoring (a background process after every train and every "next sample") is off: the
    train task re-scores in-process before it returns and the strategy scores what is missing, so the next sample
    never reads stale scores and two processes never write the datastore's image info at once. It adds no endpoint.
    """

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        self.state = AppState(app_dir, studies)
        self.class_names = read_class_names(app_dir)
        super().__init__(app_dir=app_dir, studies=studies, conf=conf, name="assft",
                         description="Active source-free fine-tuning: ASSFT picks the next volume, SSFT trains",
                         version=versions().get("assft", ""), labels=list(self.class_names.values()))
        self._auto_update_scoring = False

    def init_infers(self) -> dict[str, Any]:
        return {MODEL_NAME: AssftInfer(self.state, self.class_names)}

    def init_trainers(self) -> dict[str, Any]:
        return {MODEL_NAME: AssftTrain(self.state)}

    def init_strategies(self) -> dict[str, Any]:
        default = self.state.config.strategy  # first, so clients that take the first strategy get the default
        order = (default, *(s for s in APP_STRATEGIES if s != default))
        return {name: AssftStrategy(self.state, name) for name in order}

    def init_scoring_methods(self) -> dict[str, Any]:
        return {"assft": AssftScoring(self.state)}

    def info(self) -> dict[str, Any]:
        """MONAI Label's info plus the strategies' options under config.activelearning: Slicer shows them, and
        MONAI Label merges them into every "next sample" request (so no key there may be called "strategy")."""
        meta = super().info()
        meta.setdefault("config", {})["activelearning"] = self._strategies[self.state.config.strategy].config()
        return meta
