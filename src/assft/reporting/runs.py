"""Find and read campaign ledgers under a folder: one `RunData` per (domain, strategy, seed), plus the bounds.

Layout written by `assft simulate`: RUNS/{domain}/{strategy}/seed{S}/ledger.json (+ campaign.yaml) and optionally
RUNS/{domain}/bounds.json. With pool draws as replicates (benchmarks/experiments/run_suite.py, `replicate: draw`) the tree is
RUNS/draw{D}/{domain}/{arm}/seed{D}, and a domain's bounds are the mean over its draws. Any folder tree works:
every `ledger.json` below the root is read; the strategy and seed come from the ledger meta (then campaign.yaml,
then the folder names) and the domain is the folder two levels above the campaign folder (or "default" when the
tree is too shallow to have one).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assft.campaign.config import CONFIG_NAME
from assft.campaign.ledger import LEDGER_NAME, RoundRecord, read_ledger
from assft.campaign.experiment import BOUNDS_NAME
from assft.errors import CampaignError, DataError

__all__ = ["DEFAULT_DOMAIN", "RunData", "RunSet", "load_runs", "mean_bounds"]

DEFAULT_DOMAIN = "default"


@dataclass(frozen=True)
class RunData:
    """One campaign's evaluated curve: budgets (labeled volumes) and per-round metrics, budget-0 point first if any."""

    domain: str
    strategy: str
    seed: int
    path: Path  # the campaign folder
    pool_size: int | None
    budget_total: int | None
    rounds_planned: int | None
    baseline: dict[str, Any] | None  # meta.baseline_metrics (the budget-0 point), or None
    rounds: tuple[RoundRecord, ...]  # evaluated rounds with metrics, in round order
    config: dict[str, Any] = field(default_factory=dict)  # campaign.yaml (strategy, query, finetune, ...)
    own_bounds: dict[str, dict[str, Any] | None] | None = None  # round-0 references the ledger carries itself

    @property
    def steps_per_round(self) -> list[int | None]:
        """Optimizer steps each evaluated round spent (None for ledgers older than the compute record)."""
        return [(r.compute or {}).get("optimizer_steps") for r in self.rounds]

    @property
    def patches_per_round(self) -> list[int | None]:
        """Training patches each evaluated round saw (pseudo-labeled ones included)."""
        return [(r.compute or {}).get("patches") for r in self.rounds]

    @property
    def complete(self) -> bool:
        """True when every planned round was evaluated (unknown plan: True)."""
        return self.rounds_planned is None or len(self.rounds) >= self.rounds_planned

    @property
    def budgets(self) -> list[float]:
        """Labeled volumes at each curve point: 0 (when a baseline exists), then labeled_total per round."""
        head = [0.0] if self.baseline is not None else []
        return head + [float(r.labeled_total or 0) for r in self.rounds]  # evaluated rounds always have one

    def curve(self, metric: str = "mean_dice") -> list[float]:
        """The metric at each point of `budgets` (NaN where a round lacks it)."""
        points = ([self.baseline] if self.baseline is not None else []) + [r.metrics for r in self.rounds]
        return [_number(p.get(metric)) for p in points]

    def costs(self, axis: str) -> list[float] | None:
        """Cumulative annotation cost on `axis` (a `metrics.annotation_cost.COST_FIELDS` name, e.g. "fg_slices") at
        each point of `budgets`: 0 at the budget-0 point, then the sum over every pick labeled so far. None when a
        round has no recorded cost (ledgers written before it was recorded)."""
        total, out = 0.0, [0.0] if self.baseline is not None else []
        for record in self.rounds:
            costs = record.annotation_cost
            if costs is None or any(not isinstance((costs.get(c) or {}).get(axis), (int, float))
                                    for c in record.selected):
                return None
            total += sum(float(costs[c][axis]) for c in record.selected)
            out.append(total)
        return out

    @property
    def final(self) -> dict[str, Any] | None:
        """Metrics of the last evaluated round."""
        return self.rounds[-1].metrics if self.rounds else None


@dataclass
class RunSet:
    """Every run found under `root`, the bounds per domain, and ledgers that were skipped (with the reason)."""

    root: Path
    runs: list[RunData]
    bounds: dict[str, dict[str, dict[str, Any] | None]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @property
    def domains(self) -> list[str]:
        """Domain names, sorted."""
        return sorted({r.domain for r in self.runs})

    @property
    def strategies(self) -> list[str]:
        """Strategy names, sorted ("assft" first when present, as the method of interest)."""
        names = sorted({r.strategy for r in self.runs})
        return sorted(names, key=lambda n: n != "assft")

    def select(self, domain: str, strategy: str) -> list[RunData]:
        """Runs of one (domain, strategy), by seed."""
        return sorted((r for r in self.runs if r.domain == domain and r.strategy == strategy), key=lambda r: r.seed)


def _number(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read JSON ({exc}).", path=path,
                        fix="restore the file from the run folder; assft writes it atomically") from exc


def _campaign_yaml(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_NAME
    if not path.exists():
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _domain_dir(folder: Path, root: Path) -> Path | None:
    """The folder two levels above the campaign folder, when it lies within `root` (else None)."""
    depth = len(folder.relative_to(root).parts)
    return folder.parent.parent if depth >= 2 else None


def _read_run(ledger_path: Path, root: Path) -> RunData | str:
    """A RunData, or the reason the ledger is skipped."""
    try:
        ledger = read_ledger(ledger_path)
    except CampaignError as exc:
        return f"{ledger_path}: not an assft ledger ({exc.message})"
    folder = ledger_path.parent
    meta = ledger.meta
    config = _campaign_yaml(folder)
    # A named arm (a strategy with other query/fine-tuning settings) is reported under its own name.
    strategy = (meta.arm or config.get("arm") or meta.strategy or config.get("strategy")
                or (folder.parent.name if folder != root else None))
    seed = meta.seed if meta.seed is not None else config.get("seed")
    if seed is None and folder.name.startswith("seed") and folder.name[4:].isdigit():
        seed = int(folder.name[4:])
    if not strategy:
        return f"{ledger_path}: no strategy in the ledger meta or {CONFIG_NAME}"
    domain_dir = _domain_dir(folder, root)
    domain = DEFAULT_DOMAIN if domain_dir is None else (domain_dir.name or DEFAULT_DOMAIN)
    rounds = []
    for record in sorted(ledger.rounds, key=lambda r: r.round):
        if record.status == "evaluated" and record.metrics is not None:
            if record.labeled_total is None:
                return f"{ledger_path}: round {record.round} is evaluated but has no labeled_total"
            rounds.append(record)
    return RunData(domain=domain, strategy=str(strategy), seed=int(seed or 0), path=folder,
                   pool_size=meta.pool_size, budget_total=meta.budget_total, rounds_planned=meta.rounds,
                   baseline=meta.baseline_metrics, rounds=tuple(rounds), config=config,
                   own_bounds=campaign_bounds(meta))


def campaign_bounds(meta: Any) -> dict[str, dict[str, Any] | None] | None:
    """The bounds a campaign's own round 0 gives (a real campaign has no bounds.json): lower = the source model as
    is, the adapted start as a reference named after its method, upper = the campaign's upper reference model when
    it has one; None when round 0 was not evaluated."""
    if meta.baseline_metrics is None:
        return None
    if meta.unadapted_metrics is None:  # no adaptation: the start model is the source model
        return {"lower": meta.baseline_metrics, "upper": meta.upper_metrics}
    method = str((meta.adaptation or {}).get("method") or "adapted")
    return {"lower": meta.unadapted_metrics, "upper": meta.upper_metrics, method: meta.baseline_metrics}


def read_bounds(raw: Any) -> dict[str, dict[str, Any] | None]:
    """bounds.json -> {"lower", "upper", and one entry per budget-0 reference (e.g. "adabn")}: metric dicts or None.

    The upper bound's seed count and steps ride along in its dict ("n_seeds", "steps") when recorded.
    """
    if not isinstance(raw, dict):
        return {"lower": None, "upper": None}
    out: dict[str, dict[str, Any] | None] = {k: raw.get(k) if isinstance(raw.get(k), dict) else None
                                             for k in ("lower", "upper")}
    if out["upper"] is not None:
        out["upper"] = {**out["upper"], "n_seeds": len(raw.get("upper_seeds") or [0]), "steps": raw.get("upper_steps")}
    for name, metrics in (raw.get("references") or {}).items():
        if isinstance(metrics, dict) and name not in out:
            out[str(name)] = metrics
    return out


def load_runs(root: str | Path) -> RunSet:
    """Read every ledger.json under `root` (a runs folder or a single campaign folder) and the domains' bounds.

    Raises:
        DataError: `root` is missing, holds no ledger.json, two ledgers claim the same (domain, strategy, seed), or no
            ledger has an evaluated round with metrics.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError("the runs folder does not exist.", path=root,
                        fix="pass the --out folder of `assft simulate` or a campaign folder")
    ledgers = sorted(root.rglob(LEDGER_NAME))
    if not ledgers:
        raise DataError(f"no {LEDGER_NAME} found in this folder or below it.", path=root,
                        fix="pass the --out folder of `assft simulate` (RUNS/domain/strategy/seedS/ledger.json) "
                            "or a campaign folder")
    runs: list[RunData] = []
    skipped: list[str] = []
    seen: dict[tuple[str, str, int], Path] = {}
    bound_dirs: dict[str, dict[Path, None]] = {}  # per domain, every folder with a bounds.json (one per pool draw)
    for path in ledgers:
        run = _read_run(path, root)
        if isinstance(run, str):
            skipped.append(run)
            continue
        key = (run.domain, run.strategy, run.seed)
        if key in seen:
            raise DataError(f"two ledgers are domain={key[0]!r} strategy={key[1]!r} seed={key[2]}: {seen[key]} and "
                            f"{run.path}.", path=root, fix="report each simulation folder separately")
        seen[key] = run.path
        if not run.rounds:
            skipped.append(f"{run.path}: no evaluated round with test metrics yet")
            continue
        runs.append(run)
        domain_dir = _domain_dir(run.path, root)
        if domain_dir is not None and (domain_dir / BOUNDS_NAME).exists():
            bound_dirs.setdefault(run.domain, {})[domain_dir] = None
    if not runs:
        raise DataError(f"found {len(ledgers)} ledger(s) but none has an evaluated round with test metrics.",
                        path=root, fix="run the campaigns with a labeled --test set; skipped: " + "; ".join(skipped))
    bounds = {domain: mean_bounds([read_bounds(_read_json(d / BOUNDS_NAME)) for d in dirs])
              for domain, dirs in bound_dirs.items()}
    for run in runs:  # campaigns outside a simulation: their own round 0 is the reference
        if run.domain not in bounds and run.own_bounds is not None:
            bounds[run.domain] = run.own_bounds
    return RunSet(root=root, runs=runs, bounds=bounds, skipped=skipped)


def mean_bounds(draws: list[dict[str, dict[str, Any] | None]]) -> dict[str, dict[str, Any] | None]:
    """The mean of several `read_bounds` results (one per pool draw of a domain): every number averaged over the
    draws that have it, values equal in every draw kept as they are, "n_draws" added; one draw is returned as is."""
    if len(draws) == 1:
        return draws[0]

    def mean(values: list[Any]) -> Any:
        if all(isinstance(v, dict) for v in values):
            return {k: mean([v[k] for v in values if k in v]) for k in dict.fromkeys(k for v in values for k in v)}
        if all(v == values[0] for v in values):
            return values[0]
        numbers = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)
                   and math.isfinite(v)]
        return sum(numbers) / len(numbers) if numbers else None

    out: dict[str, dict[str, Any] | None] = {}
    for key in dict.fromkeys(k for b in draws for k in b):
        present = [b[key] for b in draws if isinstance(b.get(key), dict)]
        out[key] = {**mean(present), "n_draws": len(present)} if present else None
    return out
