"""Campaigns: budget, config validation, the real annotation workflow, the lock, invalid labels, kill/resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from assft.campaign.budget import Budget
from assft.campaign.config import CampaignConfig, load_campaign_config
from assft.campaign.campaign import init_campaign
from assft.campaign.engine import finetune_round, import_labels, next_round
from assft.campaign.status import campaign_status
from assft.campaign.evaluation import evaluate_on_test
from assft.campaign.layout import round_dir
from assft.campaign.ledger import Ledger, campaign_lock
from assft.config import ModelConfig, TrainConfig, parse_config
from assft.data.io import write_label_map
from assft.errors import BudgetError, CampaignError, ConfigError, UnknownNameError

SCRIPT = shutil.which("assft")
ENTRY = [SCRIPT] if SCRIPT else [sys.executable, "-c", "from assft.cli.app import main; main()"]
FINETUNE = {"train": {"steps": 2, "batch_size": 1, "patch_size": [16, 16, 16]}, "ssft_steps": 2}
INFERENCE = {"roi_size": [16, 16, 16], "channels_last": False}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Ten 16^3 phantoms (6 pool, 4 test) and a 3-step source model."""
    from assft.data import load_dataset, make_split, save_split
    from assft.data.synthetic import make_phantom_dataset
    from assft.pretrain.supervised import train_supervised

    root = tmp_path_factory.mktemp("campaign")
    data = make_phantom_dataset(root / "data", 10, shape=(16, 16, 16), seed=0)
    spec = load_dataset(data)
    split = make_split(spec.case_ids, {"pool": 6, "test": 4}, 0)
    save_split(root / "split.json", split, seed=0, fractions={}, dataset=data)
    model = train_supervised(spec.subset(split["pool"][:2]), root / "src",
                             model_config=ModelConfig(out_channels=5, params={"channels": (4, 8, 16), "strides": (2, 2)}),
                             train_config=TrainConfig(steps=3, batch_size=2, patch_size=(16, 16, 16))).best
    return {"root": root, "data": data, "split": split, "model": model, "spec": spec}


def make_config(setup: dict, **overrides) -> CampaignConfig:
    raw = {"model": str(setup["model"]), "pool": str(setup["data"]), "pool_ids": setup["split"]["pool"],
           "test": str(setup["data"]), "test_ids": setup["split"]["test"], "budget": "2", "rounds": 2,
           "strategy": "random", "finetune": FINETUNE, "inference": INFERENCE, **overrides}
    return CampaignConfig.model_validate(raw)


def test_budget_splits_over_rounds_without_overshoot() -> None:
    budget = Budget(7, 3)
    assert [budget.for_round(r) for r in (1, 2, 3)] == [3, 2, 2] and budget.spent_after(3) == 7
    assert budget.clip(3, available=1) == 1
    with pytest.raises(BudgetError, match="cannot be split over 3 rounds"):
        Budget(2, 3)
    with pytest.raises(BudgetError, match="outside 1..3"):
        budget.for_round(4)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 40), st.integers(1, 6)).filter(lambda s: s[0] >= s[1]), min_size=1,
                max_size=4))
def test_an_extended_plan_keeps_every_segment_share(segments: list[tuple[int, int]]) -> None:
    """Extending never re-splits rounds already planned: each segment's rounds spend exactly its own volumes."""
    plan = Budget.of_segments(segments)
    assert plan.total == sum(t for t, _ in segments) and plan.rounds == sum(r for _, r in segments)
    first = 1
    for total, rounds in segments:
        assert sum(plan.for_round(r) for r in range(first, first + rounds)) == total
        assert plan.for_round(first) == Budget(total, rounds).for_round(1)
        first += rounds


def test_config_errors_are_clear(setup: dict, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="rounds: Value error, must be >= 1"):
        parse_config({"model": "m.pt", "pool": "p", "rounds": 0}, CampaignConfig)
    with pytest.raises(ConfigError, match="budgte: Extra inputs are not permitted"):
        parse_config({"model": "m.pt", "pool": "p", "budgte": 3}, CampaignConfig)
    with pytest.raises(UnknownNameError, match="Did you mean 'random'"):
        init_campaign(tmp_path / "c", make_config(setup, strategy="randon"))
    with pytest.raises(BudgetError, match="larger than the candidate pool of 6"):
        init_campaign(tmp_path / "c", make_config(setup, budget="9"))
    assert not (tmp_path / "c" / "campaign.yaml").exists()


def test_campaign_yaml_records_every_query_and_finetune_field(setup: dict, tmp_path: Path) -> None:
    config = make_config(setup, query={"alpha": 0.75})
    init_campaign(tmp_path / "c", config)
    written = yaml.safe_load((tmp_path / "c" / "campaign.yaml").read_text())
    # every default is written (a later version's defaults cannot change a running campaign) except what the
    # campaign owns: the strategy and budget (top level) and the fine-tuning seed (derived per round)
    assert written["query"]["alpha"] == 0.75 and written["query"]["kd"]["combine"] == "product"
    assert "strategy" not in written["query"] and "budget" not in written["query"]
    assert "seed" not in written["finetune"] and written["finetune"]["bn_stats"] == "pool"
    loaded = load_campaign_config(tmp_path / "c")
    assert loaded.query_for_round(2).model_dump() == {**config.query.model_dump(), "strategy": "random", "budget": 2}
    assert loaded.finetune_with_seed(7).seed == 7 and loaded.finetune.steps_per_round == config.finetune.steps_per_round


def _write_labels(setup: dict, folder: Path, case_ids: list[str], *, shape=(16, 16, 16), value=1, nan=False) -> None:
    from assft.data.io import write_volume

    folder.mkdir(parents=True, exist_ok=True)
    for case_id in case_ids:
        label = np.zeros(shape, np.uint8)
        label[4:8, 4:8, 4:8] = value
        if nan:
            write_volume(folder / f"{case_id}.nii.gz", np.where(label > 0, np.nan, 0).astype(np.float32))
        else:
            write_label_map(folder / f"{case_id}.nii.gz", label)


def test_real_workflow_with_invalid_labels(setup: dict, tmp_path: Path) -> None:
    camp = tmp_path / "camp"
    init_campaign(camp, make_config(setup, oracle="folder"))
    first = next_round(camp)
    assert len(first.selected) == 1 and first.status == "queried"
    assert next_round(camp).selected == first.selected  # idempotent while awaiting labels
    assert (round_dir(camp, 1) / "to_annotate.csv").exists()
    assert len([p for p in (round_dir(camp, 1) / "to_annotate").iterdir() if p.is_file()]) == 1  # the image link
    assert [p.name for p in (round_dir(camp, 1) / "to_annotate" / "pre_annotations").iterdir()] == \
        [f"{first.selected[0]}.nii.gz"]  # and the model's label map to correct
    from assft.campaign.oracle import validate_label_folder

    pool = setup["spec"].subset(setup["split"]["pool"])
    pre_annotations = round_dir(camp, 1) / "to_annotate" / "pre_annotations"
    assert set(validate_label_folder(pre_annotations, pool, first.selected)) == set(first.selected)  # importable
    before = (camp / "ledger.json").read_bytes()
    case = first.selected[0]
    bad = {
        "wrong shape": dict(shape=(16, 16, 8)),
        "not in dataset.json": dict(value=9),
        "NaN": dict(nan=True),
    }
    for name, kwargs in bad.items():
        folder = tmp_path / name.replace(" ", "_")
        _write_labels(setup, folder, [case], **kwargs)
        with pytest.raises(CampaignError, match="nothing was imported") as info:
            import_labels(camp, folder)
        assert case in str(info.value)
        assert (camp / "ledger.json").read_bytes() == before and not (camp / "labels").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(CampaignError, match=f"missing label for queried case {case}"):
        import_labels(camp, tmp_path / "empty")
    assert (camp / "ledger.json").read_bytes() == before
    with pytest.raises(CampaignError, match="needs a round at step 'labeled'"):
        finetune_round(camp)
    _write_labels(setup, tmp_path / "good", [case])
    assert import_labels(camp, tmp_path / "good").labels_received == [case]
    record = finetune_round(camp)
    assert record.status == "evaluated" and record.labeled_total == 1
    again = evaluate_on_test(camp / record.checkpoint, load_campaign_config(camp))  # the recorded Dice is this one
    assert record.metrics["mean_dice"] == pytest.approx(again["mean_dice"], abs=1e-6)
    assert all(p["case_id"] != case for p in record.pseudo_labels)  # pseudo-labels never include labeled cases
    status = campaign_status(camp)
    assert status["next_step"] == "assft campaign next" and status["rounds"][0]["labeled_total"] == 1
    # Through the console script: an in-process runner would share the CLI's rich console, whose width is fixed by
    # whichever test imported it first, and a narrow table wraps the row this test reads.
    shown = subprocess.run([*ENTRY, "campaign", "status", str(camp)], capture_output=True, text=True, timeout=300,
                           env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"})
    assert shown.returncode == 0, shown.stdout + shown.stderr
    row = next(line for line in shown.stdout.splitlines() if case in line)
    assert "evaluated" in row and "1/1" in row and f"{record.metrics['mean_dice']:.3f}" in row
    assert "next: assft campaign next" in shown.stdout


def test_lock_refuses_a_second_process(setup: dict, tmp_path: Path) -> None:
    camp = tmp_path / "camp"
    init_campaign(camp, make_config(setup))
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from assft.campaign.ledger import campaign_lock\n"
        f"with campaign_lock({str(camp)!r}):\n    print('locked', flush=True); time.sleep(30)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(CampaignError, match=f"another assft process \\(pid {holder.pid}\\)"):
            next_round(camp)
    finally:
        holder.kill()
        holder.wait()
    with campaign_lock(camp):  # released when the holder dies
        pass


def _simulate_cmd(setup: dict, out: Path) -> tuple[list[str], Path]:
    config = {"out": str(out), "model": str(setup["model"]), "data": str(setup["data"]),
              "split": str(setup["root"] / "split.json"), "domains": ["identity"], "strategies": ["assft"],
              "seeds": [0], "budget": "2", "rounds": 2, "finetune": FINETUNE, "inference": INFERENCE,
              "bounds": False}
    path = out.parent / f"{out.name}.yaml"
    path.write_text(json.dumps(config))
    return [sys.executable, "-m", "assft.cli.app", "simulate", "--config", str(path)], out / "identity" / "assft" / "seed0"


KILLER = """
import os, signal, sys
mode, n, config = sys.argv[1], int(sys.argv[2]), sys.argv[3]
count = [0]

def die_after(fn):
    def wrapper(*args, **kwargs):
        if mode == "during":  # die inside the call: the step is half done
            count[0] += 1
            if count[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)
        out = fn(*args, **kwargs)
        if mode == "after":  # die right after the call: the step is recorded, the next not started
            count[0] += 1
            if count[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)
        return out
    return wrapper

from assft.campaign import ledger
from assft.finetune import ssft
if mode == "after":
    ledger.Ledger.save = die_after(ledger.Ledger.save)
else:
    ssft.fit = die_after(ssft.fit)
sys.argv = ["assft", "simulate", "--config", config]
from assft.cli.app import main
main()
"""


# one fixed thread: the load-following default would change float sums between runs on a busy machine
FIXED_THREADS = {"OMP_NUM_THREADS": "1", "ASSFT_THREADS": "1"}


def _run_killed(config: Path, mode: str, n: int) -> int:
    env = {**os.environ, **FIXED_THREADS}
    proc = subprocess.run([sys.executable, "-c", KILLER, mode, str(n), str(config)], env=env, capture_output=True,
                          timeout=300)
    return proc.returncode


@pytest.mark.slow
def test_kill_and_resume_give_the_identical_ledger(setup: dict, tmp_path: Path) -> None:
    env = {**os.environ, **FIXED_THREADS}
    cmd, camp = _simulate_cmd(setup, tmp_path / "straight")
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    reference = Ledger.load(camp).canonical()
    assert [r["status"] for r in reference["rounds"]] == ["evaluated", "evaluated"]

    cmd, camp = _simulate_cmd(setup, tmp_path / "killed")
    config = Path(cmd[-1])
    ledger = camp / "ledger.json"
    # kill -9 after the 3rd ledger write (round 1 queried), inside the first fine-tuning (round 1 labeled, model
    # half-trained), then after the 2nd write of the resumed run (round 1 finetuned/evaluated): each leaves work to do
    for mode, n in (("after", 3), ("during", 1), ("after", 2)):
        assert _run_killed(config, mode, n) == -signal.SIGKILL
        assert "finished_at" not in json.loads(ledger.read_text())["meta"]
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    resumed = Ledger.load(camp).canonical()
    assert resumed == reference


def test_a_campaign_reads_its_pool_once_through_its_volume_cache(setup: dict, tmp_path: Path, monkeypatch) -> None:
    import assft.data.preprocess as preprocess
    from assft.campaign.layout import VOLUME_CACHE

    reads: list[str] = []
    real = preprocess.load_case_uncached
    monkeypatch.setattr(preprocess, "load_case_uncached", lambda case, config, with_label=True:
                        reads.append(case.case_id) or real(case, config, with_label=with_label))
    camp = tmp_path / "cached"
    init_campaign(camp, make_config(setup, oracle="folder", strategy="entropy", test=None, test_ids=None))
    next_round(camp)  # the pool pass, and the pick's pre-annotation (from the cache)
    first = sorted(reads)
    assert first == sorted(setup["split"]["pool"])  # each pool volume read from its file exactly once
    shutil.rmtree(round_dir(camp, 1))  # scoring again (as a later round would) reads nothing from the files
    (camp / "ledger.json").write_text(json.dumps({**json.loads((camp / "ledger.json").read_text()), "rounds": []}))
    next_round(camp)
    assert sorted(reads) == first and len(list((camp / VOLUME_CACHE).glob("*.json"))) == 6
    off = tmp_path / "uncached"
    init_campaign(off, make_config(setup, oracle="folder", strategy="entropy", cache_volumes=False, test=None,
                                   test_ids=None))
    next_round(off)  # without the cache the pick is read again for its pre-annotation
    assert not (off / VOLUME_CACHE).exists() and len(reads) == 6 + 6 + 1


def test_a_campaign_with_figures_pictures_each_rounds_picks(setup: dict, tmp_path: Path) -> None:
    camp = init_campaign(tmp_path / "c", make_config(setup, figures=True, strategy="assft"))
    record = next_round(camp)
    figures = round_dir(camp, 1) / "query" / "figures"
    assert sorted(p.name for p in figures.iterdir()) == [f"01_{record.selected[0]}.png", "contact_sheet.png"]
    plain = init_campaign(tmp_path / "d", make_config(setup, strategy="assft"))
    assert next_round(plain).selected == record.selected  # figures change no pick
    assert not (round_dir(plain, 1) / "query" / "figures").exists()


def test_a_campaign_written_before_a_query_field_existed_keeps_its_old_behaviour(setup: dict, tmp_path: Path) -> None:
    """campaign.yaml holds every field; one it lacks was added later, so the campaign keeps the old meaning
    (alpha_high_spread None) while a new campaign gets the new default."""
    campaign = init_campaign(tmp_path / "c", make_config(setup, strategy="assft"))
    assert load_campaign_config(campaign).query.alpha_high_spread == 1.0
    raw = yaml.safe_load((campaign / "campaign.yaml").read_text())
    del raw["query"]["alpha_high_spread"]
    (campaign / "campaign.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    assert load_campaign_config(campaign).query.alpha_high_spread is None


def test_extend_is_resumable_when_killed_between_its_two_writes(setup: dict, tmp_path: Path, monkeypatch) -> None:
    """The ledger is written first: a crash before campaign.yaml leaves the old plan in force, and the next
    `extend` finishes that extension instead of adding a second one."""
    import assft.campaign.extend as extend
    from assft.campaign.campaign import Campaign, campaign_budget
    from assft.campaign.extend import extend_campaign

    camp = init_campaign(tmp_path / "c", make_config(setup, oracle="folder"))  # 2 volumes over 2 rounds
    real = extend.save_campaign_config

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(extend, "save_campaign_config", killed)
    with pytest.raises(KeyboardInterrupt):
        extend_campaign(camp, 2, "3")
    assert load_campaign_config(camp).extensions == []  # campaign.yaml untouched: `next` keeps the old plan
    assert Ledger.load(camp).meta.rounds == 4
    monkeypatch.setattr(extend, "save_campaign_config", real)
    again = extend_campaign(camp, 2, "3")
    assert again["resumed"] and again["rounds"] == 4 and again["per_round"] == [1, 1, 2, 1]
    config = load_campaign_config(camp)
    assert [(e.rounds, e.budget) for e in config.extensions] == [(2, "3")]
    plan = campaign_budget(config, 6)
    assert (plan.total, plan.rounds, [plan.for_round(r) for r in (1, 2, 3, 4)]) == (5, 4, [1, 1, 2, 1])
    assert len(Campaign.open(camp).meta.extensions) == 1
    with pytest.raises(BudgetError, match="cannot be split over 2 rounds"):
        extend_campaign(camp, 2, "1")
