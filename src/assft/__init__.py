"""assft: active source-free adaptation of 3D medical segmentation foundation models.

The public API is re-exported here. Names resolve lazily (PEP 562) so that `import assft` and `assft --help` stay
fast: torch and MONAI load only when a name that needs them is first used. Importing assft has no side effects.
"""

from __future__ import annotations

from assft.utils.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # errors and configuration
    "AssftError": "assft.errors", "DataError": "assft.errors", "ConfigError": "assft.errors",
    "CheckpointError": "assft.errors", "BudgetError": "assft.errors", "CampaignError": "assft.errors",
    "UnknownNameError": "assft.errors",
    "PreprocessConfig": "assft.config", "ModelConfig": "assft.config", "InferenceConfig": "assft.config",
    "TrainConfig": "assft.config",
    # data and domains
    "Case": "assft.data", "DatasetSpec": "assft.data", "load_dataset": "assft.data", "check_dataset": "assft.data",
    "load_case": "assft.data", "make_split": "assft.data", "load_split": "assft.data",
    "make_phantom_dataset": "assft.data.synthetic",
    "apply_shift": "assft.domains", "apply_domain_to_dataset": "assft.domains", "list_domains": "assft.domains",
    # models and inference
    "MODELS": "assft.models", "build_model": "assft.models", "load_checkpoint": "assft.models",
    "save_checkpoint": "assft.models", "build_from_checkpoint": "assft.models", "make_checkpoint": "assft.models",
    "run_pass": "assft.inference", "predict_to_folder": "assft.inference",
    # training, fine-tuning, evaluation
    "train_supervised": "assft.pretrain.supervised", "fit": "assft.finetune.trainer",
    "run_ssft": "assft.finetune.ssft", "FinetuneConfig": "assft.finetune.config",
    "PseudoLabelConfig": "assft.finetune.config", "SSFTResult": "assft.finetune.ssft",
    "pseudo_weight_ramp": "assft.finetune.ssft", "select_reliable": "assft.finetune.pseudo_labels",
    "plot_pseudo_label_dice": "assft.reporting.pseudo_labels_plot",
    "evaluate_checkpoint": "assft.inference.evaluate",
    "compute_case_metrics": "assft.metrics", "compute_aubc": "assft.metrics", "paired_test": "assft.metrics",
    "win_matrix": "assft.metrics",
    # query
    "run_query": "assft.query", "QueryConfig": "assft.query", "QueryResult": "assft.query",
    "STRATEGIES": "assft.query", "compute_fingerprint": "assft.pretrain", "Need": "assft.query",
    "CaseSummary": "assft.query", "make_strategy": "assft.query", "attach_fingerprint": "assft.query",
    "load_query_model": "assft.query", "iter_summaries": "assft.query",
    # pre-training
    "pretrain_ssl": "assft.pretrain", "import_weights": "assft.pretrain", "PretrainConfig": "assft.pretrain",
    "IMPORT_FORMATS": "assft.pretrain",
    # campaigns and reports
    "CampaignConfig": "assft.campaign.config", "init_campaign": "assft.campaign.campaign",
    "next_round": "assft.campaign.engine", "import_labels": "assft.campaign.engine",
    "finetune_round": "assft.campaign.engine", "run_campaign": "assft.campaign.simulate",
    "SimulationConfig": "assft.campaign.simulate", "run_simulation": "assft.campaign.simulate",
    "run_demo": "assft.demo", "write_report": "assft.reporting", "build_report": "assft.reporting",
    "load_runs": "assft.reporting",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

__getattr__, _ = lazy_exports(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted(__all__)
