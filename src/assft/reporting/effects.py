"""The two questions a comparison must answer, each on equal compute:

- query effect: does a query pick better volumes? Every arm against the reference baseline (`fg-random`) whose
  fine-tuning is identical (same recipe; with and without SSFT are separate families);
- SSFT effect: do the pseudo-labels help? Every SSFT arm against the labeled-only arm of the same query and recipe.

Arms are matched by their campaign.yaml (strategy, query and fine-tuning settings), never by name. Step counts are
left out of the match and checked instead against the optimizer steps the ledgers recorded: a pair whose arms spent
different steps per round is kept but marked, so an unmatched comparison is visible rather than silently dropped.
Effects are paired differences of per-run AUBC: per domain over seeds, and pooled over (domain, seed) pairs, with a
95 % percentile bootstrap CI, wins/n, the Wilcoxon signed-rank p and its Holm-adjusted value within each family
(one table, one scope). When the runs include `multisite` beside other domains, every row also has a second pooled
line without it (`pooled_without`): the one heterogeneous pool must not carry a pooled result alone.

The unit of a pair is the run's (domain, seed). In a simulation whose replicates are pool draws (run_suite's
`replicate: draw`) the seed *is* the draw: each draw has its own split, source model and AdaBN start, shared by every
arm of that draw, so the pairs are paired by draw. `declared_effects` computes a preset's pre-declared comparisons
(one Holm family per scope across them).
"""

from __future__ import annotations

import json
from typing import Any

from assft.metrics.stats import holm, paired_effect
from assft.reporting.comparison import REFERENCE_BASELINE, Key, aubc_by_pair
from assft.reporting.runs import RunData, RunSet

__all__ = ["SECOND_LINE_WITHOUT", "compute_effects", "declared_effects", "finetune_signature", "paired_effects"]

SECOND_LINE_WITHOUT = ("multisite",)  # domains left out of the second pooled line

_STEP_FIELDS = ("steps_per_round", "ssft_fraction", "ssft_steps")
_SSFT_ONLY_FIELDS = ("pseudo", "ramp_fraction", "restart_from_pretrained", "record_true_dice")


def _finetune(run: RunData) -> dict[str, Any]:
    from assft.finetune.config import FinetuneConfig

    raw = dict(run.config.get("finetune") or {})
    raw.pop("seed", None)
    try:
        return FinetuneConfig.model_validate(raw).model_dump(mode="json")
    except ValueError:  # a ledger from another version: compare the raw settings
        return raw


def ssft_on(run: RunData) -> bool:
    """Whether the run's fine-tuning uses pseudo-labels."""
    return (_finetune(run).get("pseudo") or {}).get("reliability", "both") != "none"


def finetune_signature(run: RunData, *, ignore_ssft: bool = False) -> str:
    """The run's fine-tuning recipe without its step counts (and, with `ignore_ssft`, without the SSFT settings)."""
    config = _finetune(run)
    for key in _STEP_FIELDS + (_SSFT_ONLY_FIELDS if ignore_ssft else ()):
        config.pop(key, None)
    train = dict(config.get("train") or {})
    train.pop("steps", None)
    train.pop("seed", None)
    config["train"] = train
    return json.dumps(config, sort_keys=True)


def _query_signature(run: RunData) -> str:
    from assft.query.config import QueryConfig

    # campaign.yaml holds every query field (older ones only the overrides): compare the resolved settings.
    raw = {k: v for k, v in (run.config.get("query") or {}).items() if k not in ("strategy", "budget")}
    try:
        query = QueryConfig.model_validate(raw).model_dump(mode="json", exclude={"strategy", "budget"})
    except ValueError:  # a ledger from another version: compare the raw settings
        query = raw
    return json.dumps({"strategy": run.config.get("strategy"), "query": query}, sort_keys=True)


def _arms(runset: RunSet) -> dict[str, RunData]:
    """One representative run per arm (arms are uniform over seeds and domains in a simulation)."""
    out: dict[str, RunData] = {}
    for run in runset.runs:
        out.setdefault(run.strategy, run)
    return out


def _steps(runset: RunSet, arm: str) -> list[int]:
    return sorted({s for r in runset.runs if r.strategy == arm for s in r.steps_per_round if s is not None})


def paired_effects(scores: dict[str, dict[Key, float]], pairs: list[tuple[str, str]], *,
                   without: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """One row per (arm, reference) of `scores` ({arm: {(domain, replicate): AUBC}}), paired on the keys both have.

    Each row: {"arm", "vs", "by_domain": {domain: effect}, "pooled": effect or None} and, when `without` names
    domains that are present and others remain, "pooled_without": {**effect, "excluded": [...]}. An effect is
    `metrics.stats.paired_effect`'s dict plus "p_holm": Holm over the rows within each scope (each domain, pooled,
    pooled without), i.e. the comparisons are one family per scope.
    """
    rows = []
    for a, b in pairs:
        common = sorted(set(scores.get(a, {})) & set(scores.get(b, {})))
        row: dict[str, Any] = {"arm": a, "vs": b, "by_domain": {}}
        for domain in sorted({d for d, _ in common}):
            keys = [k for k in common if k[0] == domain]
            row["by_domain"][domain] = paired_effect([scores[a][k] for k in keys], [scores[b][k] for k in keys])
        row["pooled"] = paired_effect([scores[a][k] for k in common], [scores[b][k] for k in common]) \
            if common else None
        excluded = sorted(set(without) & {d for d, _ in common})
        kept = [k for k in common if k[0] not in excluded]
        if excluded and kept and len(kept) < len(common):
            row["pooled_without"] = {**paired_effect([scores[a][k] for k in kept], [scores[b][k] for k in kept]),
                                     "excluded": excluded}
        rows.append(row)
    scopes = sorted({d for row in rows for d in row["by_domain"]})
    for scope in [("by_domain", d) for d in scopes] + [("pooled", None), ("pooled_without", None)]:
        cells = [row.get(scope[0]) if scope[1] is None else row["by_domain"].get(scope[1]) for row in rows]
        adjusted = holm([c["p_value"] if c else None for c in cells])
        for cell, p in zip(cells, adjusted, strict=True):
            if cell is not None:
                cell["p_holm"] = p
    return rows


def _effects(runset: RunSet, pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """One row per (a, b): per-domain and pooled effects with Holm-adjusted p within each scope, and the steps."""
    rows = paired_effects(aubc_by_pair(runset), pairs, without=SECOND_LINE_WITHOUT)
    for row in rows:
        steps_a, steps_b = _steps(runset, row["arm"]), _steps(runset, row["vs"])
        row.update(steps_per_round=[steps_a, steps_b], equal_compute=bool(steps_a) and steps_a == steps_b)
    return rows


def declared_effects(runset: RunSet, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """A preset's pre-declared comparisons [(arm, reference)] as one Holm family per scope (see `paired_effects`);
    pairs naming an arm absent from the runs are listed under "missing" instead of failing the report."""
    arms = {r.strategy for r in runset.runs}
    present = [(a, b) for a, b in pairs if a in arms and b in arms]
    return {"rows": _effects(runset, present), "missing": [[a, b] for a, b in pairs if (a, b) not in present]}


def compute_effects(runset: RunSet, reference: str = REFERENCE_BASELINE) -> dict[str, Any]:
    """{"query_effect": [{"ssft", "reference", "rows"}], "ssft_effect": {"rows"}} (see the module docstring)."""
    arms = _arms(runset)
    groups: dict[str, list[str]] = {}
    for name, run in arms.items():
        groups.setdefault(finetune_signature(run), []).append(name)
    query_effect = []
    for signature, names in groups.items():
        refs = [n for n in names if arms[n].config.get("strategy") == reference]
        if not refs:
            continue
        ref = min(refs, key=lambda n: (n != reference and n != f"{reference}+ssft", n))
        others = [n for n in sorted(names) if n != ref]
        if others:
            query_effect.append({"ssft": ssft_on(arms[ref]), "reference": ref,
                                 "rows": _effects(runset, [(n, ref) for n in others])})
    query_effect.sort(key=lambda g: g["ssft"])
    ssft_pairs = []
    for name, run in sorted(arms.items()):
        if not ssft_on(run):
            continue
        match = [n for n, other in arms.items() if not ssft_on(other)
                 and _query_signature(other) == _query_signature(run)
                 and finetune_signature(other, ignore_ssft=True) == finetune_signature(run, ignore_ssft=True)]
        if match:
            ssft_pairs.append((name, sorted(match)[0]))
    return {"query_effect": query_effect, "ssft_effect": {"rows": _effects(runset, ssft_pairs)}}
