"""assft: active source-free adaptation of 3D medical segmentation foundation models.

The root holds the workflow's entry points; everything else lives in its package (`assft.query`, `assft.campaign`,
`assft.finetune`, ...). Names resolve lazily (PEP 562) so that `import assft` and `assft --help` stay fast: torch and
MONAI load only when a name that needs them is first used. Importing assft has no side effects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from assft.utils.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "AssftError": "assft.errors",
    # data, the source model, its evaluation
    "load_dataset": "assft.data.layout", "train_supervised": "assft.pretrain.supervised",
    "evaluate_checkpoint": "assft.inference.evaluate",
    # budget 0, the query's two steps (and their composition), fine-tuning
    "adapt_checkpoint": "assft.adapt.api", "score_pool": "assft.query.api", "run_query": "assft.query.api",
    "QueryConfig": "assft.query.config", "run_ssft": "assft.finetune.ssft", "FinetuneConfig": "assft.finetune.config",
    # campaigns, simulations, reports
    "CampaignConfig": "assft.campaign.config", "init_campaign": "assft.campaign.campaign",
    "next_round": "assft.campaign.engine", "import_labels": "assft.campaign.engine",
    "finetune_round": "assft.campaign.engine", "run_campaign": "assft.campaign.simulate",
    "run_simulation": "assft.campaign.simulate", "write_report": "assft.reporting.report",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

__getattr__, _ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # type checkers and IDEs see the real names
    from assft.adapt.api import adapt_checkpoint
    from assft.campaign.campaign import init_campaign
    from assft.campaign.config import CampaignConfig
    from assft.campaign.engine import finetune_round, import_labels, next_round
    from assft.campaign.simulate import run_campaign, run_simulation
    from assft.data.layout import load_dataset
    from assft.errors import AssftError
    from assft.finetune.config import FinetuneConfig
    from assft.finetune.ssft import run_ssft
    from assft.inference.evaluate import evaluate_checkpoint
    from assft.pretrain.supervised import train_supervised
    from assft.query.api import run_query, score_pool
    from assft.query.config import QueryConfig
    from assft.reporting.report import write_report


def __dir__() -> list[str]:
    return sorted(__all__)
