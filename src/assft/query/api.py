"""`run_query`: score a pool in one streaming pass and select a batch with a registered strategy (the CLI calls it)."""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assft.config import InferenceConfig, config_hash
from assft.data.cases import Case, DatasetSpec
from assft.errors import ConfigError, DataError
from assft.query.config import Need, QueryConfig, resolve_budget
from assft.query.scorer import QueryModel, load_query_model, score_cases
from assft.query.strategies import Selection, SelectionContext, make_strategy
from assft.query.summaries import CaseSummary
from assft.utils.provenance import versions
from assft.utils.seeding import make_rng

FIXED_COLUMNS = ("case_id", "rank", "selected", "Q", "DKD", "KD", "Div", "ASD")


@dataclass
class QueryResult:
    """The outcome of one query: the selection, per-case summaries and everything needed to reproduce it."""

    selection: Selection
    summaries: list[CaseSummary]
    config: QueryConfig
    budget: int
    seed: int
    inference: InferenceConfig
    labeled_ids: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    round_index: int | None = None  # 1-based campaign round (None: a one-off query)
    total_rounds: int | None = None

    @property
    def selected(self) -> list[str]:
        """Chosen case ids in pick order."""
        return list(self.selection.selected)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per candidate in rank order: case_id, rank, selected, Q, DKD, KD, Div, ASD, then other columns."""
        by_id = {s.case_id: s for s in self.summaries}
        chosen = set(self.selection.selected)
        extra = [c for c in self.selection.columns if c not in FIXED_COLUMNS]
        scalar_names = sorted({k for s in self.summaries for k in s.scalars()} - {"kd", "asd"})
        rows = []
        for rank, case_id in enumerate(self.selection.ranking, start=1):
            scalars = by_id[case_id].scalars() if case_id in by_id else {}
            row: dict[str, Any] = {"case_id": case_id, "rank": rank, "selected": case_id in chosen}
            row["Q"] = self.selection.columns.get("Q", {}).get(case_id)
            row["DKD"] = self.selection.columns.get("DKD", {}).get(case_id)
            row["KD"] = scalars.get("kd")
            row["Div"] = self.selection.columns.get("Div", {}).get(case_id)
            row["ASD"] = scalars.get("asd")
            for col in extra:
                row[col] = self.selection.columns[col].get(case_id)
            for name in scalar_names:
                row[name] = scalars.get(name)
            rows.append(row)
        return rows

    def to_csv(self) -> str:
        """selection.csv text (empty cells where a score was not computed)."""
        rows = self.rows()
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else list(FIXED_COLUMNS),
                                lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
        return buffer.getvalue()

    def to_json(self) -> dict[str, Any]:
        """selection.json content: config, seed, budget, selection with rationale, versions, timings."""
        return {
            "strategy": self.selection.strategy,
            "config": self.config.model_dump(mode="json"),
            "config_hash": config_hash(self.config),
            "inference": self.inference.model_dump(mode="json"),
            "seed": self.seed,
            "round_index": self.round_index,
            "total_rounds": self.total_rounds,
            "budget": self.budget,
            "pool_size": len(self.summaries),
            "labeled_ids": self.labeled_ids,
            "selected": [{"case_id": c, "rank": i + 1, "rationale": self.selection.rationale.get(c, "")}
                         for i, c in enumerate(self.selection.selected)],
            "notes": self.selection.notes,
            "provenance": self.provenance,
            "versions": versions(),
            "timings": self.timings,
        }


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def read_case_ids(path: str | Path) -> list[str]:
    """One case id per line (blank lines and '#' comments ignored)."""
    path = Path(path)
    if not path.exists():
        raise DataError("labeled-ids file not found.", path=path, fix="write one case id per line")
    lines = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line]


def _cases(source: str | Path | DatasetSpec | Sequence[Case] | None) -> list[Case]:
    if source is None:
        return []
    if isinstance(source, str | Path):
        from assft.data.layout import load_dataset

        return list(load_dataset(source).cases)
    if isinstance(source, DatasetSpec):
        return list(source.cases)
    return list(source)


def _training_patch(qm: QueryModel) -> tuple[int, int, int]:
    patch = (qm.checkpoint.metadata.get("train_config") or {}).get("patch_size")
    return tuple(patch) if patch else InferenceConfig().roi_size  # type: ignore[return-value]


def run_query(
    model: str | Path | QueryModel,
    pool: str | Path | DatasetSpec | Sequence[Case],
    config: QueryConfig | None = None,
    *,
    pretrained: str | Path | QueryModel | None = None,
    labeled: str | Path | DatasetSpec | Sequence[Case] | None = None,
    labeled_ids: Iterable[str] = (),
    seed: int = 0,
    inference: InferenceConfig | None = None,
    fingerprint: str | Path | dict | None = None,
    out_dir: str | Path | None = None,
    show_progress: bool | None = None,
    theta0_cache: str | Path | None = None,
    round_index: int | None = None,
    total_rounds: int | None = None,
) -> QueryResult:
    """Score the pool once (streaming) and select `config.budget` volumes with `config.strategy`.

    Args:
        model: the current model θ (checkpoint path or loaded QueryModel).
        pool: the unlabeled pool (dataset folder, DatasetSpec or cases).
        config: query options (strategy, budget, alpha, ...); defaults from QueryConfig.
        pretrained: θ0 for KD when it differs from θ (default: θ itself).
        labeled: an already labeled set (its embeddings feed Div, coreset and TypiClust).
        labeled_ids: ids of pool cases that are already labeled (excluded; their embeddings are used).
        seed: seeds the tie-breaks and random strategies (a derived numpy Generator; no global RNG).
        inference: sliding-window settings (default: roi = the checkpoint's training patch).
        fingerprint: source fingerprint file or mapping for KD (networks without BatchNorm running statistics).
        out_dir: when given, selection.csv and selection.json are written there.
        theta0_cache: a JSON file of θ0's norm moments per volume (`assft.query.moment_cache`), read to skip θ0's
            pass for volumes seen before and updated; campaigns keep one, so KD costs one θ0 pass per volume.

    Returns:
        QueryResult (selected ids in pick order, ranked rows, timings, provenance).

    Raises:
        BudgetError: the budget exceeds the candidate pool. ConfigError: a probability-based strategy on an
        SSL-only model, BALD without dropout. CheckpointError: no source statistics for KD. DataError: bad ids.
    """
    from assft.models.source_stats import resolve_source_stats
    from assft.utils.progress import progress

    start = time.perf_counter()
    config = config or QueryConfig()
    check_rounds(round_index, total_rounds)
    strategy = make_strategy(config.strategy, config)
    current = model if isinstance(model, QueryModel) else load_query_model(model)
    theta0 = None
    if pretrained is not None:
        theta0 = pretrained if isinstance(pretrained, QueryModel) else load_query_model(pretrained)
        if theta0.path is not None and current.path is not None and theta0.path.resolve() == current.path.resolve():
            theta0 = None
    needs = strategy.resolve_needs(current.has_head)
    inference = inference or InferenceConfig(roi_size=_training_patch(current))

    pool_cases = _cases(pool)
    pool_ids = {c.case_id for c in pool_cases}
    labeled_ids = list(dict.fromkeys(labeled_ids))
    unknown = [c for c in labeled_ids if c not in pool_ids]
    if unknown:
        raise DataError(f"{len(unknown)} labeled ids are not in the pool (e.g. {', '.join(unknown[:3])}).",
                        fix="list ids of pool cases (file stems), or pass the labeled volumes with --labeled")
    labeled_cases = _cases(labeled)
    excluded = set(labeled_ids) | {c.case_id for c in labeled_cases}
    candidates = [c for c in pool_cases if c.case_id not in excluded]
    budget = resolve_budget(config.budget, len(candidates))

    source_stats, kd_source = None, None
    if Need.NORM_STATS in needs:
        base = theta0 or current
        source_stats, kd_source = resolve_source_stats(base.model, base.checkpoint, config.kd_source, fingerprint,
                                                       base.path)
    timings: dict[str, float] = {}
    kwargs = {"pretrained": theta0, "source_stats": source_stats}
    cache_key, moments = None, None
    if theta0_cache is not None and source_stats and base.path is not None:  # `base` is θ0 (set with source_stats)
        from assft.query.moment_cache import load_moment_cache, moment_cache_key

        cache_key = moment_cache_key(base.path, base.checkpoint.preprocess.model_dump(mode="json"), inference)
        moments = load_moment_cache(theta0_cache, cache_key)
        kwargs["theta0_moments"] = moments
    known = len(moments or {})
    summaries: list[CaseSummary] = []
    if needs:
        summaries = score_cases(progress(candidates, "Scoring pool", total=len(candidates), enabled=show_progress),
                                current, needs, config, inference, timings=timings, **kwargs)
    else:
        summaries = [CaseSummary(c.case_id) for c in candidates]
    if moments is not None and len(moments) > known:
        from assft.query.moment_cache import save_moment_cache

        save_moment_cache(theta0_cache, cache_key, moments)  # type: ignore[arg-type]
    timings["pool_scoring_s"] = time.perf_counter() - start

    reference = None
    ref_ids = sorted({c.case_id: c for c in labeled_cases + [c for c in pool_cases if c.case_id in labeled_ids]})
    if Need.EMBEDDING in needs and ref_ids:
        t0 = time.perf_counter()
        by_id = {c.case_id: c for c in pool_cases if c.case_id in labeled_ids}
        by_id.update({c.case_id: c for c in labeled_cases})
        ref_summaries = score_cases([by_id[c] for c in ref_ids], current, {Need.EMBEDDING}, config, inference,
                                    pretrained=theta0, timings={})
        reference = np.stack([s.embedding for s in ref_summaries])  # type: ignore[misc]
        timings["labeled_embedding_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    context = SelectionContext(config, current.has_head, tuple(ref_ids), reference, round_index=round_index,
                               total_rounds=total_rounds, class_names=dict(current.checkpoint.labels))
    selection = strategy.select(summaries, context, budget, make_rng(seed, "query", config.strategy))
    timings["selection_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - start
    provenance = {
        "model": str(current.path) if current.path else None,
        "model_kind": current.checkpoint.kind,
        "model_config": current.checkpoint.model_config.model_dump(mode="json"),
        "pretrained": str(theta0.path) if theta0 is not None and theta0.path else None,
        "theta_equals_theta0": theta0 is None,
        "kd_source": kd_source,
        "needs": sorted(n.value for n in needs),
        "budget_requested": config.budget,
        "n_candidates": len(candidates),
        "n_reference": len(ref_ids),
    }
    result = QueryResult(selection, summaries, config, budget, seed, inference, list(ref_ids), timings, provenance,
                         round_index, total_rounds)
    if out_dir is not None:
        save_query_result(result, out_dir)
    return result


def check_rounds(round_index: int | None, total_rounds: int | None) -> None:
    """round_index in 1..total_rounds (either may be None); a ConfigError otherwise."""
    if total_rounds is not None and total_rounds < 1:
        raise ConfigError(f"total_rounds must be at least 1, got {total_rounds}.", fix="pass the campaign's rounds")
    if round_index is not None and (round_index < 1 or (total_rounds is not None and round_index > total_rounds)):
        raise ConfigError(f"round_index {round_index} is outside 1..{total_rounds or 'total_rounds'}.",
                          fix="pass the 1-based index of the current round")


def save_query_result(result: QueryResult, out_dir: str | Path) -> tuple[Path, Path]:
    """Atomically write selection.csv and selection.json into `out_dir`."""
    from assft.utils.atomic import atomic_write_json, atomic_write_text

    out_dir = Path(out_dir)
    csv_path = atomic_write_text(out_dir / "selection.csv", result.to_csv())
    json_path = atomic_write_json(out_dir / "selection.json", result.to_json())
    return csv_path, json_path
