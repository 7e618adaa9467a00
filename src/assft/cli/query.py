"""`assft query|fingerprint|list-strategies`."""

from __future__ import annotations

from pathlib import Path

import typer

from assft.cli.common import check_output_dir, check_output_file, console, default_of, parse_triple
from assft.query.config import QueryConfig


def register(app: typer.Typer) -> None:
    """Add the commands to the root app."""
    app.command("query")(query)
    app.command("fingerprint")(fingerprint)
    app.command("list-strategies")(list_strategies)


def query(
    model: Path = typer.Option(..., "--model", exists=True, dir_okay=False, help="Current model θ (assft .pt)."),
    pool: Path = typer.Option(..., "--images", exists=True, file_okay=False,
                              help="Unlabeled pool to pick from (dataset or folder of volumes)."),
    budget: str = typer.Option(..., "--budget", help="Volumes to pick: N, or P% of the candidate pool."),
    out: Path = typer.Option(..., "--out", help="Folder for selection.csv and selection.json."),
    strategy: str = typer.Option(None, "--strategy", help="Registered strategy, see `assft list-strategies` "
                                                          f"(default {default_of(QueryConfig, 'strategy')})."),
    pretrained: Path = typer.Option(None, "--pretrained", exists=True, dir_okay=False,
                                    help="Frozen pre-trained θ0 for KD (default: the θ0 --model's provenance names, "
                                         "e.g. the checkpoint `adapt` or `finetune` started from; else --model itself)."),
    labeled: Path = typer.Option(None, "--data", exists=True, file_okay=False,
                                 help="Already labeled volumes (their embeddings feed Div, coreset, TypiClust)."),
    labeled_ids: Path = typer.Option(None, "--labeled-ids", exists=True, dir_okay=False,
                                     help="File with ids of pool cases already labeled (one per line)."),
    seed: int = typer.Option(0, "--seed", help="Seed for tie-breaks and random strategies."),
    config: Path = typer.Option(None, "--config", exists=True, dir_okay=False,
                                help="QueryConfig YAML/JSON (every option, e.g. sampling, power.beta, kd.guard, "
                                     "clasp.reduce); the options below override it."),
    alpha: float = typer.Option(None, "--alpha", help="Q = alpha*norm(DKD) + (1-alpha)*norm(ASD) "
                                                        f"(default {default_of(QueryConfig, 'alpha')})."),
    dkd_combine: str = typer.Option(None, "--dkd-combine", help=f"product or sum (default {default_of(QueryConfig, 'kd.combine')})."),
    asd_threshold: str = typer.Option(None, "--asd-threshold", help=f"otsu or fixed (default {default_of(QueryConfig, 'asd.threshold')})."),
    asd_fixed_threshold: float = typer.Option(None, "--asd-fixed-threshold", help="tau for 'fixed' "
                                             f"(default {default_of(QueryConfig, 'asd.fixed_threshold')})."),
    asd_reduce: str = typer.Option(None, "--asd-reduce", help="class_balanced or mean "
                                    f"(default {default_of(QueryConfig, 'asd.reduce')})."),
    cold_start: str = typer.Option(None, "--cold-start", help="auto, always or never "
                                    f"(default {default_of(QueryConfig, 'cold_start')})."),
    kd_source: str = typer.Option(None, "--kd-source", help="auto, running_stats, fingerprint, intensity, pool or "
                                   f"consistency (default {default_of(QueryConfig, 'kd.source')})."),
    fingerprint_file: Path = typer.Option(None, "--fingerprint", exists=True, dir_okay=False,
                                          help="Source fingerprint (from `assft fingerprint`) for KD."),
    embedding_source: str = typer.Option(None, "--embedding-source", help="current or pretrained "
                                          f"(default {default_of(QueryConfig, 'embedding_source')})."),
    mc_samples: int = typer.Option(None, "--mc-samples", min=1, help="BALD MC-dropout samples T "
                                   f"(default {default_of(QueryConfig, 'mc_samples')})."),
    roi: str = typer.Option(None, "--roi", help="Sliding-window size D,H,W (default: the training patch)."),
    figures: bool = typer.Option(False, "--figures/--no-figures",
                                 help="Also write OUT/figures/: a PNG per pick (three planes through the region that "
                                      "drove it: image, prediction, entropy) and contact_sheet.png."),
) -> None:
    """Choose the volumes to annotate next; writes selection.csv/json and prints the picks with a rationale."""
    from rich.table import Table

    from assft.cli.common import default_query_of, recorded_theta0_of
    from assft.config import InferenceConfig, load_config, parse_config, read_yaml
    from assft.data.splits import read_case_ids

    check_output_dir(out, inputs={"--model": model, "--images": pool, "--pretrained": pretrained,
                                  "--data": labeled})
    base = load_config(config, QueryConfig).model_dump() if config else {}
    overrides = {"strategy": strategy, "budget": budget, "alpha": alpha, "cold_start": cold_start,
                 "embedding_source": embedding_source, "mc_samples": mc_samples,
                 "asd": {"threshold": asd_threshold, "fixed_threshold": asd_fixed_threshold, "reduce": asd_reduce},
                 "kd": {"source": kd_source, "combine": dkd_combine}}
    for key, value in overrides.items():  # an option given on the command line replaces the file's value
        if isinstance(value, dict):
            base[key] = {**base.get(key, {}), **{k: v for k, v in value.items() if v is not None}}
        elif value is not None:
            base[key] = value
    chosen_by_file = config is not None and "strategy" in (read_yaml(config) or {})
    if strategy is None and not chosen_by_file:  # nobody chose: the query the evidence supports for θ0's network
        chosen = default_query_of(pretrained or recorded_theta0_of(model) or model, fingerprint_file)
        if chosen is not None and chosen[0] != base.get("strategy", default_of(QueryConfig, "strategy")):
            base["strategy"] = chosen[0]
            console.print(f"query: {chosen[0]} ({chosen[1]})")
    query_config = parse_config(base, QueryConfig)
    inference = InferenceConfig(roi_size=parse_triple(roi, "--roi")) if roi else None
    # After the checks: these load torch and MONAI (seconds), and a refused output should not wait for them.
    from assft.cli.common import load_data
    from assft.query.api import run_query
    from assft.query.result import (FIGURES_DIR, LOW_FOREGROUND_FRACTION, LOW_FOREGROUND_SHARE_HINT, save_query_result,
                                    write_result_figures)
    from assft.utils.distributed import join_process_group

    result = run_query(model, load_data(pool), query_config, pretrained=pretrained, labeled=labeled,  # type: ignore[arg-type]
                       labeled_ids=read_case_ids(labeled_ids, allow_empty=True) if labeled_ids else (), seed=seed,
                       inference=inference, fingerprint=fingerprint_file, figures=figures)
    if not join_process_group().is_main:
        return  # under torchrun rank 0 prints and writes
    save_query_result(result, out)
    figures = figures and result.provenance["model_kind"] != "ssl-only"  # an SSL-only model has no prediction
    if figures:
        write_result_figures(result, out / FIGURES_DIR, result.class_names)
    kd_source = result.provenance.get("kd_source")
    table = Table(title=f"{result.selection.strategy}: {len(result.selected)} of {len(result.summaries)} volumes "
                        f"(seed {seed}" + (f"; KD source: {kd_source}" if kd_source else "") + ")")
    for column in ("rank", "case", "Q at pick", "rationale"):
        table.add_column(column, overflow="fold")
    q = result.pick_scores()
    for rank, case_id in enumerate(result.selected, start=1):
        table.add_row(str(rank), case_id, f"{q[case_id]:.3f}" if case_id in q else "-",
                      result.selection.rationale.get(case_id, ""))
    console.print(table)
    if result.q_legend():
        console.print(result.q_legend())
    if result.selection.notes.get("cold_start"):
        method = result.selection.notes.get("cold_start_method", "dkd")
        console.print(f"cold start: SSL-only model, {'Q = DKD' if method == 'dkd' else f'{method} on the embeddings'}")
    console.print(theta0_line(result.provenance))
    share = result.low_foreground_share()
    if share is not None and share >= LOW_FOREGROUND_SHARE_HINT:
        console.print(f"pool: {share:.0%} of the volumes get almost no predicted foreground (under "
                      f"{LOW_FOREGROUND_FRACTION:g} x the pool's median): part of the pool may lie outside what the "
                      "model knows, the kind of pool where a knowledge-gap query beat random (docs/method.md)")
    t = result.timings
    console.print(f"scored {len(result.summaries)} volumes in {t.get('pool_scoring_s', 0):.1f} s "
                  f"(θ0 pass {t.get('pass_pretrained_s', 0):.1f} s); wrote {out / 'selection.csv'} and "
                  f"{out / 'selection.json'}" + (f"; figures in {out / 'figures'}" if figures else ""))


def fingerprint(
    model: Path = typer.Option(..., "--model", exists=True, dir_okay=False, help="Pre-trained θ0 (assft .pt)."),
    images: Path = typer.Option(..., "--images", exists=True, file_okay=False, help="Source images (dataset/folder)."),
    out: Path = typer.Option(..., "--out", help="Fingerprint JSON to write."),
    attach_to: Path = typer.Option(None, "--attach-to", help="Also write a copy of --model with the fingerprint."),
    limit: int = typer.Option(None, "--limit", min=1, help="Use only the first N source images."),
    roi: str = typer.Option(None, "--roi", help="Sliding-window size D,H,W (default: the training patch)."),
) -> None:
    """Per-layer channel means/variances of θ0's norm-layer inputs over source images (KD without BatchNorm)."""
    check_output_file(out, inputs={"--model": model, "--images": images}, kind="fingerprint")
    if attach_to is not None:
        check_output_file(attach_to, "--attach-to", inputs={"--model": model, "--images": images, "--out": out},
                          kind="checkpoint")
    roi_size = parse_triple(roi, "--roi")
    # After the checks: these load torch and MONAI (seconds), and a refused output should not wait for them.
    from assft.cli.common import load_data
    from assft.models.checkpoint import build_from_checkpoint
    from assft.models.source_stats import attach_fingerprint, save_fingerprint
    from assft.pretrain.fingerprint import compute_fingerprint

    net, ckpt, _ = build_from_checkpoint(model, allow_partial=True)
    inference = ckpt.inference_config(roi_size)
    cases = load_data(images, limit=limit).cases
    fp = compute_fingerprint(net, cases, ckpt.preprocess, inference, model_config=ckpt.model_config)
    n_cases = len(cases)
    save_fingerprint(out, fp, {"model": str(model), "images": str(images), "n_cases": n_cases,
                               "weighting": "voxel count (law of total variance)"})
    message = f"fingerprinted {len(fp)} norm layers over {n_cases} source images; wrote {out}"
    if attach_to is not None:
        attach_fingerprint(model, fp, attach_to)
        message += f" and {attach_to}"
    console.print(message)


def list_strategies() -> None:
    """Print the registered query strategies with what each needs from the pass."""
    from rich.table import Table

    from assft.query.strategies import STRATEGIES

    table = Table(title="query strategies")
    for column in ("name", "needs", "description"):
        table.add_column(column, overflow="fold")
    for name, doc in STRATEGIES.describe().items():
        needs = ", ".join(sorted(n.value for n in STRATEGIES.get(name).requires)) or "-"
        table.add_row(name, needs, doc)
    console.print(table)


def theta0_line(provenance: dict) -> str:
    """Which θ0 the query measured KD against, and where that choice came from."""
    origin = provenance.get("theta0_from")
    if provenance.get("kd_source") is None:
        return "θ0: not used (this strategy does not measure KD)"
    if origin == "provenance":
        return f"KD measured against θ0 = {provenance['pretrained']} (from the checkpoint's provenance)"
    if origin == "pretrained":
        return f"KD measured against θ0 = {provenance['pretrained']} (--pretrained)"
    return (f"KD measured against θ0 = {provenance.get('model')} itself (θ is θ0: its provenance names no other "
            "θ0, or --pretrained is the same file)")
