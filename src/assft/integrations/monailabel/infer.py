"""`AssftInfer`: MONAI Label's segmentation model serving the app's current checkpoint (needs the extra)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from assft.config import InferenceConfig

from assft.integrations.monailabel.state import AppState, model_version
from assft.utils.progress import silenced


class AssftInfer(InferTask):
    """Segment one image with the newest checkpoint (θ0 before the first train request): assft's sliding-window
    pass with the checkpoint's own preprocessing, window and class map, so Slicer shows what the query scored.

    Implemented on MONAI Label's minimal `InferTask` interface rather than `BasicInferTask`: the latter rebuilds
    the pipeline from MONAI transforms, which would be a second copy of assft's preprocessing to keep in step.
    """

    def __init__(self, state: AppState, labels: dict[int, str]) -> None:
        super().__init__(type=InferType.SEGMENTATION, labels={name: value for value, name in labels.items()},
                         dimension=3, description="assft: the current fine-tuned model (SSFT rounds)",
                         config={"sw_overlap": InferenceConfig().overlap})
        self.state = state
        self._loaded: tuple[str, Any, Any] | None = None  # (version, model, checkpoint), reloaded after training

    def is_valid(self) -> bool:
        """A model with a segmentation head (an SSL-only θ0 cannot segment before the first train request)."""
        from assft.models.checkpoint import load_checkpoint

        return load_checkpoint(self.state.current_model()).kind == "supervised"

    def get_path(self, validate: bool = True) -> str:
        return str(self.state.current_model())

    def _model(self) -> tuple[Any, Any]:
        path = self.state.current_model()
        version = model_version(path)
        if self._loaded is None or self._loaded[0] != version:
            from assft.models.checkpoint import build_from_checkpoint

            model, checkpoint, _ = build_from_checkpoint(path)
            self._loaded = (version, model.eval(), checkpoint)
        return self._loaded[1], self._loaded[2]

    def __call__(self, request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """request["image"]: the image's path (MONAI Label resolves the id) -> (label file, its description)."""
        from assft.data.cases import Case
        from assft.data.layout import strip_suffix
        from assft.inference.predict import predict_to_folder

        image = Path(request["image"])
        model, checkpoint = self._model()
        inference = self.state.config.inference or checkpoint.inference_config()
        if "sw_overlap" in request:
            inference = inference.model_copy(update={"overlap": float(request["sw_overlap"])})
        out = Path(tempfile.mkdtemp(prefix="assft-infer-"))
        case = Case(strip_suffix(image.name), (image,), None)
        with silenced():  # the server's log is MONAI Label's
            (label,) = predict_to_folder(model, [case], checkpoint.preprocess, inference, out)
        return str(label), {"model": str(self.state.current_model().relative_to(self.state.app_dir)),
                            "model_version": model_version(self.state.current_model()),
                            "labels": {name: value for value, name in checkpoint.labels.items()}}
