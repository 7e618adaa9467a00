"""Named arms of a simulation: settings merge over the experiment's, runs land in their own folder and report name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from assft.campaign.config import load_campaign_config
from assft.campaign.experiment import SimulationConfig, deep_merge
from assft.campaign.simulate import campaign_config, run_simulation
from assft.errors import ConfigError
from assft.finetune.config import FinetuneConfig
from assft.query.config import QueryConfig
from assft.reporting.runs import load_runs
from assft.utils.progress import silenced

from test_campaign import FINETUNE, INFERENCE, setup  # noqa: F401  (module-scoped phantom fixture)

ROOT = Path(__file__).resolve().parents[2]


def test_deep_merge_keeps_nested_siblings() -> None:
    base = {"train": {"steps": 20, "batch_size": 2}, "ssft_steps": 0, "pseudo": {"reliability": "none", "qc": 0.5}}
    merged = deep_merge(base, {"ssft_steps": 20, "pseudo": {"reliability": "both"}})
    assert merged == {"train": {"steps": 20, "batch_size": 2}, "ssft_steps": 20,
                      "pseudo": {"reliability": "both", "qc": 0.5}}
    assert base["pseudo"]["reliability"] == "none"  # the base is not modified


def _experiment(setup: dict, out: Path, **overrides) -> SimulationConfig:  # noqa: F811
    raw = {"out": str(out), "model": str(setup["model"]), "data": str(setup["data"]),
           "split": str(setup["root"] / "split.json"), "strategies": ["random"], "seeds": [0], "budget": "2",
           "rounds": 1, "finetune": {**FINETUNE, "ssft_steps": 0, "pseudo": {"reliability": "none"}},
           "inference": INFERENCE, "bounds": False, **overrides}
    return SimulationConfig.model_validate(raw)


def test_arm_settings_override_the_experiment(setup: dict, tmp_path: Path) -> None:  # noqa: F811
    config = _experiment(setup, tmp_path, arms={"random+ssft": {"strategy": "random",
                                                                "finetune": {"ssft_steps": 2,
                                                                             "pseudo": {"reliability": "all"}}}})
    cell = campaign_config(config, "identity", "", 0, arm="random+ssft")
    assert cell.arm == "random+ssft" and cell.strategy == "random"
    assert cell.finetune.ssft_steps == 2 and cell.finetune.pseudo.reliability == "all"
    assert "pseudo" in cell.finetune.model_fields_set and cell.finetune.pseudo.qc == 0.5  # deep merge, then defaults
    train = FINETUNE["train"]
    assert (cell.finetune.train.steps, cell.finetune.train.batch_size) == (train["steps"], train["batch_size"])
    assert list(cell.finetune.train.patch_size) == train["patch_size"]
    plain = campaign_config(config, "identity", "random", 0)
    assert plain.arm is None and plain.finetune.ssft_steps == 0
    with pytest.raises(ConfigError, match="unknown arm 'nope'"):
        campaign_config(config, "identity", "", 0, arm="nope")


def test_a_bad_arm_setting_fails_when_the_experiment_is_read(setup: dict, tmp_path: Path) -> None:  # noqa: F811
    with pytest.raises(ValueError, match=r"arms\.bad\.query\.alpha: Input should be less than or equal to 1"):
        _experiment(setup, tmp_path, arms={"bad": {"strategy": "random", "query": {"alpha": 2}}})
    with pytest.raises(ValueError, match=r"arms\.bad\.finetune\.pseudo\.reliability"):
        _experiment(setup, tmp_path, arms={"bad": {"strategy": "random", "finetune": {"pseudo": {"reliability": "x"}}}})


def test_arm_name_may_not_be_a_strategy(setup: dict, tmp_path: Path) -> None:  # noqa: F811
    with pytest.raises(ValueError, match="also strategies"):
        _experiment(setup, tmp_path, arms={"random": {"strategy": "random"}})


def test_arms_run_into_their_folder_and_report_under_their_name(setup: dict, tmp_path: Path) -> None:  # noqa: F811
    arms = {"random-mean": {"strategy": "random", "query": {"asd": {"reduce": "mean"}}}}
    config = _experiment(setup, tmp_path, arms=arms)
    with silenced():
        dirs = run_simulation(config)
    assert [d.relative_to(tmp_path).as_posix() for d in dirs] == ["identity/random/seed0", "identity/random-mean/seed0"]
    assert load_campaign_config(dirs[1]).query.asd.reduce == "mean"
    assert load_campaign_config(dirs[0]).query.asd.reduce == "class_balanced"
    runs = load_runs(tmp_path)
    assert sorted(r.strategy for r in runs.runs) == ["random", "random-mean"]
    assert all(len(r.rounds) == 1 for r in runs.runs)


def test_benchmark_presets_are_valid_experiments() -> None:
    for path in sorted((ROOT / "benchmarks" / "configs").glob("*.yaml")):
        preset = yaml.safe_load(path.read_text())
        extra = {k: preset[k] for k in ("adapt", "reference_adaptations", "upper_seeds", "bounds") if k in preset}
        config = SimulationConfig(out="o", model="m", data="d", strategies=preset.get("strategies", []),
                                  arms=preset.get("arms", {}), seeds=preset["seeds"], budget=preset["budget"],
                                  rounds=preset["rounds"], finetune=preset["finetune"], **extra)
        assert config.seeds and (config.strategies or config.arms), path.name
        for arm in config.arms.values():  # every arm's merged settings are valid query / fine-tuning configs
            FinetuneConfig.model_validate(deep_merge(config.finetune, arm.finetune))
            QueryConfig.model_validate(deep_merge(config.query, {**arm.query, "strategy": arm.strategy}))


def test_simulation_from_an_ssl_only_model(setup: dict, tmp_path: Path) -> None:  # noqa: F811
    """The SSL-pretrained source arm: cold-start query (DKD only), a new head in round 1, no lower bound."""
    from assft.config import InferenceConfig, ModelConfig
    from assft.data import load_dataset
    from assft.models.checkpoint import load_checkpoint
    from assft.pretrain import PretrainConfig, pretrain_ssl

    spec = load_dataset(setup["data"])
    ssl = pretrain_ssl(spec.subset(setup["split"]["test"]), tmp_path / "ssl.pt",
                       model_config=ModelConfig(params={"channels": (4, 8, 16), "strides": (2, 2)}),
                       config=PretrainConfig(patch_size=16, batch_size=2, steps=2),
                       inference=InferenceConfig(**INFERENCE)).checkpoint
    assert load_checkpoint(ssl).kind == "ssl-only"
    config = _experiment(setup, tmp_path / "runs", model=str(ssl), strategies=["assft"], rounds=2, bounds=True)
    with silenced():
        (campaign,) = run_simulation(config)
    runs = load_runs(tmp_path / "runs")
    (run,) = runs.runs
    assert run.baseline is None and len(run.rounds) == 2
    assert [r.labeled_total for r in run.rounds] == [1, 2]
    # the recorded Dice is the round's checkpoint evaluated on the test ids (re-evaluated here: a known answer)
    from assft.campaign.evaluation import evaluate_on_test

    again = evaluate_on_test(campaign / run.rounds[-1].checkpoint, load_campaign_config(campaign))
    assert run.rounds[-1].metrics["mean_dice"] == pytest.approx(again["mean_dice"], abs=1e-6)
    assert runs.bounds["identity"]["lower"] is None and runs.bounds["identity"]["upper"] is not None
    first_query = load_campaign_config(campaign)
    assert first_query.strategy == "assft"


@pytest.mark.slow
def test_parallel_campaigns_match_the_sequential_run(setup: dict, tmp_path: Path) -> None:  # noqa: F811
    import json

    def outcome(out: Path, jobs: int) -> dict:
        config = _experiment(setup, out, strategies=["random", "entropy"], seeds=[0, 1])
        finished: list[Path] = []
        with silenced():
            dirs = run_simulation(config, jobs=jobs, on_campaign=finished.append)
        assert sorted(finished) == sorted(dirs)  # every campaign is reported once, in either mode
        ledgers = {d.relative_to(out).as_posix(): json.loads((d / "ledger.json").read_text()) for d in dirs}
        return {k: (v["rounds"][0]["selected"], v["rounds"][0]["metrics"]["mean_dice"]) for k, v in ledgers.items()}

    sequential, parallel = outcome(tmp_path / "seq", 1), outcome(tmp_path / "par", 2)
    assert sequential.keys() == parallel.keys() and len(sequential) == 4
    for key, (selected, dice) in sequential.items():
        assert parallel[key][0] == selected, key
        assert parallel[key][1] == pytest.approx(dice, abs=1e-4), key  # 1 vs 2 torch threads: summation order


def test_jobs_must_be_positive(setup: dict, tmp_path: Path) -> None:  # noqa: F811
    with pytest.raises(ConfigError, match="jobs must be at least 1"):
        run_simulation(_experiment(setup, tmp_path), jobs=0)
