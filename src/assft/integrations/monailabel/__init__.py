"""assft as a MONAI Label app: ASSFT as the "next sample" strategy, SSFT as the train task (docs/monailabel.md).

`config` and `generator` import neither MONAI Label nor torch (the CLI writes an app folder with them); `app`,
`scoring`, `strategy`, `infer` and `train` subclass MONAI Label's interfaces and need the extra
(`pip install "assft[monailabel]"`). The names below load lazily, so importing the package costs nothing.
"""

from assft.utils.lazy import lazy_exports

_EXPORTS = {
    "AppConfig": "assft.integrations.monailabel.config",
    "write_app": "assft.integrations.monailabel.generator",
    "AppState": "assft.integrations.monailabel.state",
    "AssftApp": "assft.integrations.monailabel.app",
    "AssftScoring": "assft.integrations.monailabel.scoring",
    "AssftStrategy": "assft.integrations.monailabel.strategy",
    "AssftInfer": "assft.integrations.monailabel.infer",
    "AssftTrain": "assft.integrations.monailabel.train",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
