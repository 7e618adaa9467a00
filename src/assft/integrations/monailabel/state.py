"""What the app's tasks share: its folders, the current model, and each image's assft record in the datastore.

Every image's record lives in the MONAI Label datastore's image info under "assft" (the way MONAI Label's epistemic
scoring keeps its score there): the model it was scored with (`model_version`, a hash of the checkpoint file), that
model's timestamp, and the pass's summary (KD, ASD, entropy, ..., the embedding). Rankings (Q, DKD, Div) are
recomputed from those summaries by assft's own strategies, so a query in MONAI Label and `assft query` run the same
code. No MONAI Label import here: the datastore is duck-typed (get_image_info / update_image_info / list_images /
get_labeled_images / get_image_uri), which also lets the tests use a dictionary-backed one.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from assft.campaign.layout import THETA0_CACHE  # θ0's norm moments per image: KD costs one θ0 pass per image, ever
from assft.integrations.monailabel.config import APP_STRATEGIES, CAMPAIGN_DIR, AppConfig, load_app_config
from assft.query.config import QueryConfig
from assft.query.summaries import SCALAR_FIELDS, CaseSummary

INFO_KEY = "assft"  # the datastore image-info key of an image's assft record


class Datastore(Protocol):
    """The part of MONAI Label's Datastore interface the app uses."""

    def list_images(self) -> list[str]: ...
    def get_labeled_images(self) -> list[str]: ...
    def get_image_uri(self, image_id: str) -> str: ...
    def get_image_info(self, image_id: str) -> dict[str, Any]: ...
    def update_image_info(self, image_id: str, info: dict[str, Any]) -> None: ...


class AppState:
    """An app folder (assft_app.yaml, model/start.pt, campaign/) serving a studies folder."""

    def __init__(self, app_dir: str | Path, studies: str | Path) -> None:
        self.app_dir = Path(app_dir).resolve()
        self.studies = Path(studies).resolve()
        self.config: AppConfig = load_app_config(self.app_dir)

    @property
    def start_model(self) -> Path:
        """θ0: the model the app was generated with (KD's source statistics always come from it)."""
        return self.app_dir / self.config.model

    @property
    def campaign_dir(self) -> Path:
        """The app's campaign folder (ledger.json, rounds/, labels/); `assft report` reads it."""
        return self.app_dir / CAMPAIGN_DIR

    @property
    def theta0_cache(self) -> Path:
        return self.app_dir / THETA0_CACHE

    def current_model(self) -> Path:
        """The newest checkpoint a train request wrote, else θ0."""
        from assft.campaign.ledger import LEDGER_NAME, Ledger

        if (self.campaign_dir / LEDGER_NAME).exists():
            for record in reversed(Ledger.load(self.campaign_dir).records()):
                if record.checkpoint:
                    return self.campaign_dir / record.checkpoint
        return self.start_model

    def query_config(self, strategy: str) -> QueryConfig:
        """The app's query options with `strategy` (the budget is set per call)."""
        return self.config.query.model_copy(update={"strategy": strategy})


_VERSIONS: dict[tuple[str, int, int], str] = {}


def model_version(path: str | Path) -> str:
    """A short hash of a checkpoint file's bytes (cached by path, size and mtime): which model scored an image."""
    stat = os.stat(path)
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _VERSIONS:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _VERSIONS[key] = digest.hexdigest()[:16]
    return _VERSIONS[key]


def summary_to_info(summary: CaseSummary) -> dict[str, Any]:
    """A CaseSummary as JSON-able image info (scalars, embedding and ClaSP PE peaks; no voxel maps)."""
    out: dict[str, Any] = {"n_voxels": summary.n_voxels, **summary.scalars()}
    for name in ("embedding", "class_pe"):
        value = getattr(summary, name)
        if value is not None:
            out[name] = [float(v) for v in np.asarray(value).reshape(-1)]
    return out


def summary_from_info(case_id: str, info: dict[str, Any]) -> CaseSummary:
    """Inverse of `summary_to_info`."""
    summary = CaseSummary(case_id, n_voxels=int(info.get("n_voxels", 0)))
    for name in SCALAR_FIELDS:
        if info.get(name) is not None:
            setattr(summary, name, info[name])
    if info.get("embedding") is not None:
        summary.embedding = np.asarray(info["embedding"], dtype=np.float32)
    if info.get("class_pe") is not None:
        summary.class_pe = np.asarray(info["class_pe"], dtype=np.float64)
    return summary


def record_of(datastore: Datastore, image_id: str) -> dict[str, Any]:
    """The image's assft record ({} when it was never scored)."""
    return dict(datastore.get_image_info(image_id).get(INFO_KEY) or {})


def update_record(datastore: Datastore, image_id: str, **fields: Any) -> None:
    """Merge `fields` into the image's assft record."""
    datastore.update_image_info(image_id, {INFO_KEY: {**record_of(datastore, image_id), **fields}})


def update_records(datastore: Datastore, updates: dict[str, dict[str, Any]]) -> None:
    """Merge each image's fields into its assft record, with one write of the datastore where it allows.

    Why not `update_image_info` per image: MONAI Label 0.8.5's LocalDatastore rewrites its whole JSON file on every
    call, so a pass over N images costs N whole-file writes, quadratic in the pool
    (benchmarks/speed/monailabel_datastore_writes.py; the numbers are in docs/monailabel.md). LocalDatastore keeps its
    state in `_datastore.objects` and writes it with `_update_datastore_file()` (under its file lock); any other
    datastore takes the public path.
    """
    objects = getattr(getattr(datastore, "_datastore", None), "objects", None)
    write_all = getattr(datastore, "_update_datastore_file", None)
    if isinstance(objects, dict) and callable(write_all) and all(i in objects for i in updates):
        for image_id, fields in updates.items():
            info = objects[image_id].image.info
            info[INFO_KEY] = {**(info.get(INFO_KEY) or {}), **fields}
        write_all()
        return
    for image_id, fields in updates.items():
        update_record(datastore, image_id, **fields)


def score_images(state: AppState, datastore: Datastore, *, force: bool = False) -> dict[str, Any]:
    """Run assft's one pass over every image not yet scored by the current model and store its summary; then rank
    the unlabeled images with the default strategy and store Q, DKD, KD, Div, ASD. Returns what it did."""
    from assft.query.api import score_pool
    from assft.query.strategies import make_strategy

    start = time.perf_counter()
    model = state.current_model()
    version = model_version(model)
    images = sorted(datastore.list_images())
    stale = [i for i in images if force or record_of(datastore, i).get("model_version") != version]
    if stale:
        from assft.data.cases import Case

        cases = [Case(i, (Path(datastore.get_image_uri(i)),), None) for i in stale]
        # Every app strategy ranks from these summaries later (`rank_images`): the pass computes what any needs.
        needs = frozenset().union(*(make_strategy(s, state.query_config(s)).requires for s in APP_STRATEGIES))
        result = score_pool(model, cases, needs, config=state.query_config("assft"), pretrained=state.start_model,
                            seed=state.config.seed, inference=state.config.inference, theta0_cache=state.theta0_cache)
        now = int(time.time())
        model_ts = int(os.stat(model).st_mtime)
        where = relative_path(model, state.app_dir)
        update_records(datastore, {s.case_id: {"model": where, "model_version": version, "model_ts": model_ts,
                                               "scored_at": now, "summary": summary_to_info(s)}
                                   for s in result.summaries})
    ranking = rank_images(state, datastore, state.config.strategy, reference=datastore.get_labeled_images())
    update_records(datastore, {image_id: {"scores": scores} for image_id, scores in ranking.scores.items()})
    return {"model": relative_path(model, state.app_dir), "model_version": version, "scored": len(stale),
            "ranked": len(ranking.scores), "strategy": state.config.strategy,
            "seconds": round(time.perf_counter() - start, 3)}


@dataclass
class Ranking:
    """The unlabeled images ranked by a strategy: picks in order, per-image scores and each pick's rationale."""

    selected: list[str]
    scores: dict[str, dict[str, float]]  # image id -> {"Q", "DKD", "KD", "Div", "ASD", "rank", ...}
    rationale: dict[str, str]
    reference: list[str]


def rank_images(state: AppState, datastore: Datastore, strategy: str, *, reference: Iterable[str],
                budget: int | None = None, exclude: Iterable[str] = (), alpha: float | None = None) -> Ranking:
    """Rank the images scored by the current model that are neither labeled, in `reference` nor in `exclude`;
    Div is measured against `reference`'s embeddings (the labeled images, and the ones already served). `alpha`
    overrides the app's α for this ranking."""
    from assft.config import InferenceConfig
    from assft.query.api import ScoredPool
    from assft.query.strategies import make_strategy
    from assft.utils.seeding import make_rng

    version = model_version(state.current_model())
    labeled = set(datastore.get_labeled_images())
    reference = sorted(set(reference))
    skip = labeled | set(reference) | set(exclude)
    current = {i: record_of(datastore, i) for i in sorted(datastore.list_images())}
    current = {i: r for i, r in current.items() if r.get("model_version") == version and "summary" in r}
    pool = [summary_from_info(i, r["summary"]) for i, r in current.items() if i not in skip]
    if not pool:
        return Ranking([], {}, {}, reference)
    known = [i for i in reference if i in current]  # a reference image not yet scored cannot count for Div
    embeddings = [current[i]["summary"].get("embedding") for i in known]
    reference_z = np.asarray(embeddings, dtype=np.float32) if known and all(e is not None for e in embeddings) \
        else None
    config = state.query_config(strategy)
    if alpha is not None:
        config = config.model_copy(update={"alpha": alpha})
    has_head, class_names = _head_and_classes(str(state.current_model()), version)
    # The pass's summaries, stored per image by `score_images`, stand in for `score_pool`'s answer.
    scored = ScoredPool(pool, known, reference_z, has_head, dict(class_names), state.config.inference or
                        InferenceConfig(), {})
    n = len(pool) if budget is None else min(budget, len(pool))
    selection = make_strategy(strategy, config).select(
        scored.summaries, scored.context(config), n, make_rng(state.config.seed, "monailabel", strategy, len(labeled)))
    by_id = {s.case_id: s for s in pool}
    scores: dict[str, dict[str, float]] = {}
    for rank, image_id in enumerate(selection.ranking, start=1):
        row: dict[str, float] = {"rank": rank}
        for column in ("Q", "DKD", "Div", "PE"):
            if image_id in selection.columns.get(column, {}):
                row[column] = float(selection.columns[column][image_id])
        for name, key in (("kd", "KD"), ("asd", "ASD")):
            if getattr(by_id[image_id], name) is not None:
                row[key] = float(getattr(by_id[image_id], name))
        scores[image_id] = row
    return Ranking(list(selection.selected), scores, dict(selection.rationale), known)


@functools.lru_cache(maxsize=4)
def _head_and_classes(path: str, version: str) -> tuple[bool, tuple[tuple[int, str], ...]]:
    """(has a segmentation head, its classes) of the checkpoint at `path` with hash `version`: read once per model,
    not on every "next sample" request."""
    from assft.models.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(path)
    return checkpoint.kind == "supervised", tuple(sorted(checkpoint.labels.items()))


def relative_path(path: Path, root: Path) -> str:
    """`path` relative to `root` when it lies inside it (as ledgers record paths), else as given."""
    try:
        return str(Path(path).resolve().relative_to(root))
    except ValueError:
        return str(path)


def served_recently(datastore: Datastore, images: Sequence[str], reset_s: int, now: float | None = None) -> list[str]:
    """Images a strategy served less than `reset_s` ago (MONAI Label records each serve in the image info as
    {"strategy": {name: {"ts": seconds, "client_id": ...}}})."""
    now = time.time() if now is None else now
    out = []
    for image_id in images:
        served = datastore.get_image_info(image_id).get("strategy") or {}
        if any(now - float(entry.get("ts", 0)) < reset_s for entry in served.values() if isinstance(entry, dict)):
            out.append(image_id)
    return out
