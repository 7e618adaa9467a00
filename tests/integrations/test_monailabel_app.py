"""The MONAI Label app's logic without MONAI Label: the app generator (through the console script), the image records
kept in the datastore, ranking with served images as the reference, and a train request as a campaign round.

The datastore is a dictionary-backed stand-in with the methods of MONAI Label's Datastore the app uses; the real
server runs in tests/integrations/test_monailabel_server.py (where the extra is installed)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assft.data.layout import strip_suffix
from assft.integrations.monailabel.config import CONFIG_NAME, START_MODEL, AppConfig, load_app_config, save_app_config
from assft.integrations.monailabel.generator import read_class_names, write_app
from assft.integrations.monailabel.state import (
    AppState,
    model_version,
    rank_images,
    record_of,
    score_images,
    served_recently,
    summary_from_info,
    summary_to_info,
)
from assft.query.summaries import CaseSummary

ASSFT = [sys.executable, "-m", "assft"]
TINY_FINETUNE = {"train": {"steps": 2, "batch_size": 1, "patch_size": [16, 16, 16]}, "ssft_steps": 2, "ssft": True}


class DictDatastore:
    """The part of MONAI Label's LocalDatastore the app uses: images in a folder, final labels in labels/final."""

    def __init__(self, studies: Path) -> None:
        self.studies = studies
        self.info: dict[str, dict] = {}

    def list_images(self) -> list[str]:
        return sorted(strip_suffix(p.name) for p in self.studies.glob("*.nii.gz"))

    def _label(self, image_id: str) -> Path:
        return self.studies / "labels" / "final" / f"{image_id}.nii.gz"

    def get_labeled_images(self) -> list[str]:
        return [i for i in self.list_images() if self._label(i).exists()]

    def get_unlabeled_images(self) -> list[str]:
        return [i for i in self.list_images() if not self._label(i).exists()]

    def get_image_uri(self, image_id: str) -> str:
        return str(self.studies / f"{image_id}.nii.gz")

    def get_label_uri(self, image_id: str, tag: str) -> str:
        return str(self._label(image_id))

    def get_image_info(self, image_id: str) -> dict:
        return copy.deepcopy(self.info.get(image_id, {}))

    def update_image_info(self, image_id: str, info: dict) -> None:
        self.info.setdefault(image_id, {}).update(copy.deepcopy(info))

    def save_label(self, image_id: str, path: Path) -> None:
        self._label(image_id).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, self._label(image_id))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Eight 16^3 phantoms as a studies folder (labels kept apart, as the annotator's) and a 3-step source model."""
    from assft.config import ModelConfig, TrainConfig
    from assft.data import load_dataset
    from assft.data.synthetic import make_phantom_dataset
    from assft.pretrain.supervised import train_supervised

    root = tmp_path_factory.mktemp("monailabel")
    data = make_phantom_dataset(root / "data", 8, shape=(16, 16, 16), seed=0)
    spec = load_dataset(data)
    model = train_supervised(spec.subset(spec.case_ids[:2]), root / "src",
                             model_config=ModelConfig(out_channels=5, params={"channels": (4, 8, 16), "strides": (2, 2)}),
                             train_config=TrainConfig(steps=3, batch_size=2, patch_size=(16, 16, 16))).best
    return {"root": root, "spec": spec, "model": model}


def make_app(world: dict, tmp_path: Path, **options) -> tuple[AppState, DictDatastore]:
    """A generated app with a 2-step SSFT recipe and a fresh studies folder holding the phantoms' images."""
    studies = tmp_path / "studies"
    studies.mkdir()
    for case in world["spec"].cases:
        shutil.copyfile(case.image_path, studies / case.image_path.name)
    app_dir = write_app(tmp_path / "app", world["model"], **options)
    config = load_app_config(app_dir)
    save_app_config(app_dir, config.model_copy(update={"finetune": config.finetune.model_validate(TINY_FINETUNE)}))
    return AppState(app_dir, studies), DictDatastore(studies)


# --- the generator -------------------------------------------------------------------------------------------------

def test_write_app_writes_a_loadable_app_and_is_idempotent(world: dict, tmp_path: Path) -> None:
    out = write_app(tmp_path / "app", world["model"], alpha=0.3, labels=["a", "b", "c", "d"], rounds=4)
    assert (out / START_MODEL).read_bytes() == Path(world["model"]).read_bytes()
    assert "from assft.integrations.monailabel.app import AssftApp" in (out / "main.py").read_text()
    assert "--host \"${ASSFT_MONAILABEL_HOST:-127.0.0.1}\"" in (out / "start_server.sh").read_text()
    config = load_app_config(out)
    assert (config.query.alpha, config.rounds, config.strategy) == (0.3, 4, "assft")
    assert config.finetune.pseudo.reliability == "both"  # SSFT by default
    assert read_class_names(out) == {1: "a", 2: "b", 3: "c", 4: "d"}
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    write_app(tmp_path / "app", world["model"], alpha=0.3, labels=["a", "b", "c", "d"], rounds=4)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*ASSFT, *args], capture_output=True, text=True, timeout=120)


def test_cli_writes_the_app(world: dict, tmp_path: Path) -> None:
    result = run_cli("monailabel", "app", "--out", str(tmp_path / "app"), "--model", str(world["model"]),
                     "--strategy", "clasp-pe")
    assert result.returncode == 0, result.stderr
    assert load_app_config(tmp_path / "app").strategy == "clasp-pe"
    assert "127.0.0.1" in result.stdout


@pytest.mark.parametrize("args, needle", [
    (["--model", "missing.pt"], "missing.pt"),
    (["--strategy", "bald"], "strategy 'bald'"),
    (["--alpha", "1.5"], "query.alpha"),
    (["--classes", "a,b"], "--classes names 2 classes"),
    (["--rounds", "0"], "rounds"),
])
def test_cli_bad_input_exits_2_and_writes_nothing(world: dict, tmp_path: Path, args: list[str], needle: str) -> None:
    model = ["--model", str(world["model"])] if "--model" not in args else []
    result = run_cli("monailabel", "app", "--out", str(tmp_path / "app"), *model, *args)
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "app").exists()


def test_a_different_app_in_the_folder_is_refused_unchanged(world: dict, tmp_path: Path) -> None:
    write_app(tmp_path / "app", world["model"])
    text = (tmp_path / "app" / CONFIG_NAME).read_text()
    result = run_cli("monailabel", "app", "--out", str(tmp_path / "app"), "--model", str(world["model"]), "--alpha", "0.2")
    assert result.returncode == 2 and "a different assft app" in result.stderr
    assert (tmp_path / "app" / CONFIG_NAME).read_text() == text


# --- records and ranking -------------------------------------------------------------------------------------------

def test_summary_round_trips_through_json_image_info() -> None:
    summary = CaseSummary("c1", n_voxels=64, kd=1.25, asd=0.5, entropy=0.1, predicted_foreground_voxels=7,
                          embedding=np.array([0.6, 0.8], np.float32), class_pe=np.array([0.3, 0.2, 0.1]))
    info = json.loads(json.dumps(summary_to_info(summary)))
    back = summary_from_info("c1", info)
    assert (back.kd, back.asd, back.entropy, back.predicted_foreground_voxels, back.n_voxels) == (1.25, 0.5, 0.1, 7, 64)
    np.testing.assert_array_equal(back.embedding, summary.embedding)  # float32 survives JSON exactly
    assert back.embedding.dtype == np.float32
    np.testing.assert_array_equal(back.class_pe, [0.3, 0.2, 0.1])
    assert back.bald is None and back.confidence is None


def test_records_are_written_in_one_batch_where_the_datastore_allows(tmp_path: Path) -> None:
    """LocalDatastore's shape (`_datastore.objects[id].image.info`, `_update_datastore_file`): one write for the
    batch, and the same records as the public one-by-one path."""
    from types import SimpleNamespace

    from assft.integrations.monailabel.state import update_records

    class LocalLike(DictDatastore):
        def __init__(self, studies: Path) -> None:
            super().__init__(studies)
            self._datastore = SimpleNamespace(objects={i: SimpleNamespace(image=SimpleNamespace(info={}))
                                                       for i in ("a", "b")})
            self.writes = 0

        def _update_datastore_file(self) -> None:
            self.writes += 1

    local, plain = LocalLike(tmp_path), DictDatastore(tmp_path)
    local._datastore.objects["a"].image.info["assft"] = {"model": "old", "keep": 1}
    plain.update_image_info("a", {"assft": {"model": "old", "keep": 1}})
    updates = {"a": {"model": "new"}, "b": {"scores": {"Q": 0.5}}}
    update_records(local, updates)
    update_records(plain, updates)
    assert local.writes == 1
    for image_id in ("a", "b"):
        assert local._datastore.objects[image_id].image.info["assft"] == record_of(plain, image_id)
    assert record_of(plain, "a") == {"model": "new", "keep": 1}


def test_served_recently_reads_monailabels_serve_records(tmp_path: Path) -> None:
    store = DictDatastore(tmp_path)
    store.update_image_info("a", {"strategy": {"assft": {"ts": 1000, "client_id": "x"}}})
    store.update_image_info("b", {"strategy": {"random": {"ts": 100}, "assft": {"ts": 10}}})
    store.update_image_info("c", {})
    assert served_recently(store, ["a", "b", "c"], reset_s=500, now=1200) == ["a"]
    assert served_recently(store, ["a", "b", "c"], reset_s=1150, now=1200) == ["a", "b"]


def test_scoring_stores_records_once_per_model_and_ranks_the_unlabeled(world: dict, tmp_path: Path) -> None:
    state, store = make_app(world, tmp_path)
    first = score_images(state, store)
    assert first["scored"] == 8 and first["ranked"] == 8
    version = model_version(state.start_model)
    for image_id in store.list_images():
        record = record_of(store, image_id)
        assert record["model_version"] == version and record["model"] == START_MODEL
        assert {"kd", "asd", "embedding", "class_pe", "predicted_foreground_voxels"} <= set(record["summary"])
        assert {"Q", "DKD", "KD", "Div", "ASD", "rank"} <= set(record["scores"])
        assert record["scores"]["KD"] == record["summary"]["kd"]
    assert sorted(record_of(store, i)["scores"]["rank"] for i in store.list_images()) == list(range(1, 9))
    assert score_images(state, store)["scored"] == 0  # the same model: nothing is scored twice


def test_serving_in_turn_equals_the_greedy_batch_and_div_counts_served(world: dict, tmp_path: Path) -> None:
    """Two annotators asking in turn get the first two picks of assft's greedy batch: the second pick's Div is its
    cosine distance to the nearest of the labeled images and the first pick."""
    state, store = make_app(world, tmp_path)
    score_images(state, store)
    store.save_label("phantom_000", world["spec"].get("phantom_000").label_path)
    batch = rank_images(state, store, "assft", reference=store.get_labeled_images(), budget=2)
    first = rank_images(state, store, "assft", reference=store.get_labeled_images(), budget=1)
    second = rank_images(state, store, "assft", reference=[*store.get_labeled_images(), *first.selected], budget=1)
    assert first.selected + second.selected == batch.selected
    assert second.reference == ["phantom_000", first.selected[0]]
    z = {i: np.asarray(record_of(store, i)["summary"]["embedding"]) for i in store.list_images()}
    pick = second.selected[0]
    expected = min(1.0 - float(z[pick] @ z[r]) / (np.linalg.norm(z[pick]) * np.linalg.norm(z[r]))
                   for r in second.reference)
    assert second.scores[pick]["Div"] == pytest.approx(expected, abs=1e-5)
    assert "phantom_000" not in batch.scores  # labeled images are never ranked


def test_a_train_request_is_a_campaign_round(world: dict, tmp_path: Path) -> None:
    from assft.campaign.ledger import Ledger
    from assft.integrations.monailabel.rounds import run_round

    state, store = make_app(world, tmp_path)
    score_images(state, store)
    for image_id in ("phantom_002", "phantom_005"):
        store.save_label(image_id, world["spec"].get(image_id).label_path)
    label_dir = store.studies / "labels" / "final"
    record = run_round(state, store, label_dir)
    assert (record["round"], record["status"], record["selected"]) == (1, "evaluated", ["phantom_002", "phantom_005"])
    assert state.current_model() == state.campaign_dir / record["checkpoint"]
    ledger = Ledger.load(state.campaign_dir)
    assert ledger.labeled_ids() == ["phantom_002", "phantom_005"]
    assert {p["case_id"] for p in ledger.last().pseudo_labels} == set(store.get_unlabeled_images())
    again = run_round(state, store, label_dir)
    assert again["round"] == 1 and "nothing to train" in again["status_message"]
    rescored = score_images(state, store)  # the new model re-scores every image
    assert rescored["scored"] == 8 and rescored["model_version"] == model_version(state.current_model())
    store.save_label("phantom_007", world["spec"].get("phantom_007").label_path)
    assert run_round(state, store, label_dir)["selected"] == ["phantom_007"]


def test_a_monitoring_test_set_gives_dice_per_round_and_a_report(world: dict, tmp_path: Path) -> None:
    from assft.data.synthetic import make_phantom_dataset
    from assft.integrations.monailabel.rounds import run_round
    from assft.reporting.report import write_report

    test_set = make_phantom_dataset(tmp_path / "test", 2, shape=(16, 16, 16), seed=5)
    state, store = make_app(world, tmp_path, test=test_set)
    assert state.config.test == str(test_set)
    store.save_label("phantom_001", world["spec"].get("phantom_001").label_path)
    record = run_round(state, store, store.studies / "labels" / "final")
    assert record["metrics"]["n_cases"] == 2 and isinstance(record["metrics"]["mean_dice"], float)
    report = write_report(state.campaign_dir, tmp_path / "report")
    assert report.summary["runs"][0]["complete"] is not None and report.markdown.exists()


def test_a_test_set_without_labels_is_refused(world: dict, tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    shutil.copyfile(world["spec"].cases[0].image_path, tmp_path / "imgs" / "x.nii.gz")
    result = run_cli("monailabel", "app", "--out", str(tmp_path / "app"), "--model", str(world["model"]),
                     "--test", str(tmp_path / "imgs"))
    assert result.returncode == 2 and "--test needs a label for every case" in result.stderr
    assert not (tmp_path / "app").exists()


def test_app_config_rejects_unknown_fields(tmp_path: Path) -> None:
    from assft.errors import ConfigError

    save_app_config(tmp_path, AppConfig())
    path = tmp_path / CONFIG_NAME
    path.write_text(path.read_text() + "serve_reset: 5\n")
    with pytest.raises(ConfigError, match="serve_reset"):
        load_app_config(tmp_path)
