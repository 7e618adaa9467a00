"""benchmarks/experiments/run_suite.py with pool draws as replicates, smoke-run on tiny phantoms: 2 draws, 1 round, 2 steps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TINY = {"out_channels": 5, "params": {"channels": [4, 8, 16], "strides": [2, 2]}}
PATCH = [16, 16, 16]


def _preset(tmp_path: Path, **overrides) -> Path:
    preset = {
        "preset": "draws_smoke", "replicate": "draw",
        "split": {"source": 3, "pool": 4, "test": 3, "val": 2},
        "source": {"kind": "supervised", "steps": 2, "model": TINY, "train": {"batch_size": 2, "patch_size": PATCH}},
        "domains": ["bias"], "adapt": {"method": "adabn"}, "upper_seeds": [0],
        "strategies": ["random", "fg-random-33"],
        "arms": {"random+ssft": {"strategy": "random", "finetune": {"pseudo": {"reliability": "both"}}}},
        "comparisons": [["fg-random-33", "random"], ["random+ssft", "random"]],
        "seeds": [0, 1], "budget": "2", "rounds": 1,
        "finetune": {"steps_per_round": 2, "train": {"batch_size": 1, "patch_size": PATCH},
                     "pseudo": {"reliability": "none"}},
        "inference": {"roi_size": PATCH, "channels_last": False},
        **overrides,
    }
    path = tmp_path / "draws_smoke.yaml"
    path.write_text(yaml.safe_dump(preset))
    return path


def _suite(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "experiments" / "run_suite.py"), *args], capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from assft.data.synthetic import make_phantom_dataset

    root = tmp_path_factory.mktemp("draws")
    data = make_phantom_dataset(root / "data", 12, shape=(16, 16, 16), seed=0)
    done = _suite("--preset", str(_preset(root)), "--data", str(data), "--work", str(root / "work"),
                  "--results", str(root / "results"), "--threads", "1")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return {"root": root, "work": root / "work" / "draws_smoke", "results": root / "results" / "draws_smoke"}


@pytest.mark.slow
def test_each_draw_has_its_own_split_source_model_and_start(suite: dict) -> None:
    draws = suite["work"] / "draws"
    splits = [json.loads((draws / f"split_draw{d}.json").read_text()) for d in (0, 1)]
    assert [s["seed"] for s in splits] == [0, 1] and splits[0]["splits"]["pool"] != splits[1]["splits"]["pool"]
    for split in splits:  # each draw is a full split of the dataset, disjoint parts
        parts = [set(ids) for ids in split["splits"].values()]
        assert sum(map(len, parts)) == len(set().union(*parts)) == 12
    experiments = [json.loads((draws / f"draw{d}" / "experiment.json").read_text()) for d in (0, 1)]
    assert experiments[0]["model"] != experiments[1]["model"]  # one source model per draw (cached by its split)
    assert [e["seeds"] for e in experiments] == [[0], [1]]  # the campaigns of draw d are seeded d
    for d in (0, 1):
        assert (draws / f"draw{d}" / "bias" / "start" / "adabn.pt").is_file()
        assert (draws / f"draw{d}" / "bias" / "bounds.json").is_file()
        assert (draws / f"draw{d}" / "_data").resolve() == (draws / "_shared" / "_data").resolve()
    assert len(list((draws / "_shared" / "_data").glob("bias/imagesTr/*.nii.gz"))) == 12  # shifted once, shared


def test_the_report_pairs_arms_by_draw_and_reports_annotation_cost(suite: dict) -> None:
    summary = json.loads((suite["results"] / "summary.json").read_text())
    assert {(r["strategy"], r["seed"]) for r in summary["runs"]} == {
        (arm, d) for arm in ("random", "fg-random-33", "random+ssft") for d in (0, 1)}
    declared = summary["effects"]["declared"]
    assert [(r["arm"], r["vs"]) for r in declared["rows"]] == [("fg-random-33", "random"), ("random+ssft", "random")]
    assert all(r["pooled"]["n"] == 2 for r in declared["rows"])  # one pair per draw
    assert summary["bounds"]["bias"]["upper"] is not None
    assert (suite["results"] / "ledgers" / "draw1" / "bias" / "random" / "seed1" / "ledger.json").is_file()
    assert (suite["results"] / "ledgers" / "draw1" / "bias" / "bounds.json").is_file()
    ledger = json.loads((suite["results"] / "ledgers" / "draw1" / "bias" / "fg-random-33" / "seed1" /
                         "ledger.json").read_text())
    (first,) = ledger["rounds"]
    assert sorted(first["annotation_cost"]) == sorted(first["selected"])  # every pick's cost, from the ground truth
    assert all(c["fg_slices"] > 0 for c in first["annotation_cost"].values())
    assert set(summary["cost_axes"]["fg_slices"]["aubc"]["bias"]) == {"random", "fg-random-33", "random+ssft"}
    assert (suite["results"] / "dice_vs_fg_slices.png").is_file()


def test_a_bad_replicate_or_comparison_is_refused(tmp_path: Path) -> None:
    done = _suite("--preset", str(_preset(tmp_path, replicate="pool")), "--report-only")
    assert done.returncode != 0 and "replicate: 'pool' is not 'seed' or 'draw'" in done.stderr
    done = _suite("--preset", str(_preset(tmp_path, comparisons=[["a"]])), "--report-only")
    assert done.returncode != 0 and "is not an [arm, reference] pair" in done.stderr


@pytest.mark.slow
def test_the_fingerprint_reference_arm_reads_the_source_splits_fingerprint(tmp_path: Path) -> None:
    from assft.data.synthetic import make_phantom_dataset
    from assft.models.checkpoint import load_checkpoint

    data = make_phantom_dataset(tmp_path / "data", 12, shape=(16, 16, 16), seed=0)
    instance_net = {**TINY, "params": {**TINY["params"], "norm": ["instance", {"affine": True}]}}
    preset = _preset(tmp_path, seeds=[0], strategies=["random"], comparisons=[],
                     source={"kind": "supervised", "steps": 2, "fingerprint": True, "model": instance_net,
                             "train": {"batch_size": 2, "patch_size": PATCH}},
                     adapt={"method": "auto"},
                     arms={"assft-fingerprint": {"strategy": "assft", "query": {"kd": {"source": "fingerprint"}}},
                           "assft-intensity": {"strategy": "assft", "query": {"kd": {"source": "intensity"}}}})
    done = _suite("--preset", str(preset), "--data", str(data), "--work", str(tmp_path / "work"),
                  "--results", str(tmp_path / "results"), "--threads", "1")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    draw = tmp_path / "work" / "draws_smoke" / "draws" / "draw0"
    model = Path(json.loads((draw / "experiment.json").read_text())["model"])
    assert model.name == "best_fingerprint.pt" and load_checkpoint(model).fingerprint  # θ0 carries its source's
    sources = {arm: json.loads((draw / "bias" / arm / "seed0" / "rounds" / "r001" / "query" / "selection.json")
                               .read_text())["provenance"]["kd_source"] for arm in ("assft-fingerprint", "assft-intensity")}
    assert sources == {"assft-fingerprint": "fingerprint:checkpoint", "assft-intensity": "intensity"}


def test_a_kd_arm_without_a_named_source_is_refused_when_theta0_carries_a_fingerprint(tmp_path: Path) -> None:
    preset = _preset(tmp_path, source={"kind": "supervised", "steps": 2, "fingerprint": True},
                     arms={"assft": {"strategy": "assft"}}, strategies=["random", "dkd"])
    done = _suite("--preset", str(preset), "--report-only")
    assert done.returncode != 0
    assert "so dkd, assft would measure KD against it" in done.stderr  # both, the plain strategy and the arm
