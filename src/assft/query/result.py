"""What one query returns and writes: `QueryResult` (selection, per-volume summaries, provenance) and its files.

selection.csv: one row per candidate in rank order (case_id, rank, selected, Q, DKD, KD, Div, ASD, then the
strategy's other columns and every scalar of the pass); selection.json: config, seed, budget, picks with their
rationale, provenance, versions and timings.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assft.config import InferenceConfig, config_hash
from assft.query.config import QueryConfig
from assft.query.strategies import Selection
from assft.query.summaries import CaseSummary
from assft.utils.provenance import versions

__all__ = ["FIGURES_DIR", "FIXED_COLUMNS", "QueryResult", "save_query_result", "write_result_figures"]

FIGURES_DIR = "figures"  # beside selection.csv: one PNG per pick and contact_sheet.png

FIXED_COLUMNS = ("case_id", "rank", "selected", "Q", "DKD", "KD", "Div", "ASD")
# A volume whose predicted foreground is under this fraction of the pool's median counts as "almost empty": on the
# benchmark's one pool with a site the model could not see, 17-30 % of the volumes were, on the others <= 7 %, and
# only there did the KD query beat random (docs/method.md, "When a knowledge-gap query is worth it").
LOW_FOREGROUND_FRACTION = 0.25
LOW_FOREGROUND_SHARE_HINT = 0.15  # the share above which `assft query` says a KD query is likely worth it


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
    class_names: dict[int, str] = field(default_factory=dict)  # θ's label value -> name (the figures' legend)

    @property
    def selected(self) -> list[str]:
        """Chosen case ids in pick order."""
        return list(self.selection.selected)

    @property
    def alpha_applied(self) -> float:
        """The alpha Q used: the configured one, or `alpha_high_spread` when the spread rule replaced it."""
        return float(self.selection.notes.get("alpha_applied", self.config.alpha))  # type: ignore[arg-type]

    def pick_scores(self) -> dict[str, float]:
        """Each pick's Q to show a person: Q at the time of the pick on the whole candidate pool's scale (column
        Q_pool, comparable across ranks) where the strategy has one, else its Q column."""
        columns = self.selection.columns
        q = columns.get("Q_pool") or columns.get("Q", {})
        return {c: q[c] for c in self.selected if c in q}

    def q_legend(self) -> str:
        """One line saying what the shown Q is and which alpha it used (empty for strategies without Q)."""
        if "Q_pool" not in self.selection.columns:
            return ""
        notes = self.selection.notes
        if notes.get("cold_start"):
            return "Q = DKD (cold start: no head, no ASD) at the time of the pick, on the whole pool's scale."
        alpha = self.alpha_applied
        text = (f"Q = α·DKD + (1 - α)·ASD with α = {alpha:g}, at the time of the pick (Div counts the volumes "
                "picked before it), every term min-max normalised over the whole candidate pool")
        if "alpha_applied" not in notes:  # dkd: Q is DKD
            text = ("Q = DKD at the time of the pick (Div counts the volumes picked before it), KD min-max "
                    "normalised over the whole candidate pool")
        elif alpha != self.config.alpha:
            spread = notes.get("kd_spread")
            text += (f"; the spread rule set α = {alpha:g} instead of {self.config.alpha:g} (pool KD spread "
                     f"{spread:.3g} >= {self.config.alpha_spread_threshold:g}), so ASD was not used")
        why = "each step renormalises over the volumes left"
        if not self.labeled_ids:
            why = ("the first pick's Div is its distance to the pool's mean embedding (nothing is labeled yet), later "
                   "ones' the distance to the nearest pick, and " + why)
        return text + f". Picks are in greedy order, not sorted by Q: {why}, so a later pick can read higher."

    def low_foreground_share(self) -> float | None:
        """Share of the pool whose predicted foreground is under LOW_FOREGROUND_FRACTION of the pool's median
        (None when the pass predicted nothing, e.g. an SSL-only model or a strategy without probabilities)."""
        sizes = [s.scalars().get("predicted_foreground_voxels") for s in self.summaries]
        known = [float(v) for v in sizes if v is not None and math.isfinite(v)]
        if not known:
            return None
        median = statistics.median(known)
        return sum(v < LOW_FOREGROUND_FRACTION * median for v in known) / len(known)

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
            "low_foreground_share": self.low_foreground_share(),
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



def save_query_result(result: QueryResult, out_dir: str | Path) -> tuple[Path, Path]:
    """Atomically write selection.csv and selection.json into `out_dir`."""
    from assft.utils.atomic import atomic_write_json, atomic_write_text

    out_dir = Path(out_dir)
    csv_path = atomic_write_text(out_dir / "selection.csv", result.to_csv())
    json_path = atomic_write_json(out_dir / "selection.json", result.to_json())
    return csv_path, json_path


def write_result_figures(result: QueryResult, out_dir: str | Path, class_names: dict[int, str]) -> list[Path]:
    """The query figures of `result`'s picks (their slices were cut in the pass), captioned with Q, DKD, ASD."""
    from assft.query.figures import pick_driver, write_query_figures

    rows = {row["case_id"]: row for row in result.rows()}
    slices = {s.case_id: s.figure for s in result.summaries if s.figure is not None}
    captions, drivers = {}, {}
    alpha = result.alpha_applied  # the alpha Q used (the spread rule may have replaced the configured one)
    for case_id in result.selected:
        row = rows.get(case_id, {})
        drivers[case_id] = pick_driver(result.selection.columns, case_id, alpha)
        q, asd_n = row.get("Q_pool"), row.get("ASD_pool")
        if _finite(q) and _finite(asd_n):  # Q's two terms at pick time, on the pool's scale
            asd_term = f"ASD {(1 - alpha) * asd_n:.2f}" if alpha < 1 else "ASD not used (α 1)"
            captions[case_id] = f"Q {q:.2f} = DKD {q - (1 - alpha) * asd_n:.2f} + {asd_term}"
        else:
            shown = {"Q": row.get("Q_pool", row.get("Q")), **{k: row.get(k) for k in ("KD", "ASD", "entropy")}}
            captions[case_id] = " ".join(f"{name} {value:.3g}" for name, value in shown.items() if _finite(value))
    return write_query_figures(out_dir, result.selected, slices, captions, drivers, class_names)


def _finite(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value)
