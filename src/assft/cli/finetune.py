"""`assft finetune` (SSFT from any checkpoint) and `assft plot-pseudo-labels` (the Figure-5 diagnostic)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from assft.cli.common import console, default_of, parse_triple
from assft.finetune.config import FinetuneConfig

F = FinetuneConfig  # help texts read the defaults from it


def register(app: typer.Typer) -> None:
    """Add the commands to the root app."""
    app.command("finetune")(finetune)
    app.command("plot-pseudo-labels")(plot_pseudo_labels)


def finetune(
    model: Path = typer.Option(..., "--model", exists=True, dir_okay=False, help="assft checkpoint (SSL-only or supervised)."),
    unlabeled: Path = typer.Option(..., "--images", exists=True, file_okay=False,
                                   help="Unlabeled pool: dataset folder or folder of images. Its labelsTr, if any, "
                                        "is read only for the pseudo-label Dice diagnostic."),
    out: Path = typer.Option(..., "--out", help="Output folder (finetuned.pt, pseudo_labels.csv, ssft_log.json)."),
    labeled: Path = typer.Option(None, "--data", exists=True, file_okay=False,
                                 help="Labeled dataset folder (L = all its cases)."),
    labeled_ids: Path = typer.Option(None, "--labeled-ids", exists=True, dir_okay=False,
                                     help="Or: text file of case ids (one per line) of --images' dataset whose "
                                          "labels form L; the other cases are the pool."),
    config: Path = typer.Option(None, "--config", exists=True, dir_okay=False,
                                help="FinetuneConfig YAML/JSON; options given here override it."),
    ssft: bool = typer.Option(None, "--ssft/--no-ssft", help="Pseudo-label stages on (default) or off."),
    reliability: str = typer.Option(None, "--reliability", help="both | confidence | distance | all | none "
                                                         f"(default {default_of(F, 'pseudo.reliability')})."),
    qc: float = typer.Option(None, "--qc", help="Quantile level of the confidence threshold "
                                                 f"(default {default_of(F, 'pseudo.qc')})."),
    qd: float = typer.Option(None, "--qd", help="Quantile level of the distance threshold "
                                                 f"(default {default_of(F, 'pseudo.qd')})."),
    mask_threshold: float = typer.Option(None, "--mask-threshold",
                                         help="Ignore pseudo-label voxels with max probability below this "
                                              f"(none: keep every voxel; default "
                                              f"{default_of(F, 'pseudo.mask_threshold')})."),
    restart_from_pretrained: bool = typer.Option(None, "--restart-from-pretrained/--no-restart-from-pretrained",
                                                 help="Start stage 3 from the input weights instead of the stage-1 "
                                                      f"weights (default {default_of(F, 'restart_from_pretrained')})."),
    steps: int = typer.Option(None, "--steps", min=1, help="Stage-1 steps (labeled only; "
                                                            f"default {default_of(F, 'train.steps')})."),
    ssft_steps: int = typer.Option(None, "--ssft-steps", min=0,
                                   help="Stage-3 steps (labeled + pseudo; "
                                   f"default {default_of(F, 'ssft_steps')}; 0 skips stage 3)."),
    lr: float = typer.Option(None, "--lr", help=f"AdamW learning rate (default {default_of(F, 'train.lr')})."),
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="Patches per step "
                                                                  f"(default {default_of(F, 'train.batch_size')})."),
    patch: str = typer.Option(None, "--patch", help=f"Patch size D,H,W (default {default_of(F, 'train.patch_size')})."),
    roi: str = typer.Option(None, "--roi", help="Sliding-window size D,H,W for stage 2 (default: the patch)."),
    seed: int = typer.Option(None, "--seed", help=f"The run's seed (default {default_of(F, 'seed')})."),
    true_dice: bool = typer.Option(None, "--true-dice/--no-true-dice",
                                   help="Score pseudo-labels against the pool's labels when present "
                                        f"(default {default_of(F, 'record_true_dice')})."),
    save_pseudo_labels: bool = typer.Option(False, "--save-pseudo-labels/--no-save-pseudo-labels",
                                            help="Write pseudo_labels/ID.nii.gz for the selected cases."),
    allow_partial: bool = typer.Option(False, "--allow-partial", help="Load what fits from --model."),
) -> None:
    """Fine-tune a checkpoint on labeled volumes, then on reliable pseudo-labels of the unlabeled ones (SSFT)."""
    from assft.cli.common import check_output_dir, load_data
    from assft.data.splits import read_case_ids
    from assft.errors import ConfigError

    if (labeled is None) == (labeled_ids is None):
        raise ConfigError("pass exactly one of --data and --labeled-ids.",
                          fix="--data DIR (a labeled dataset) or --labeled-ids FILE (ids of --images' cases)")
    check_output_dir(out, inputs={"--model": model, "--images": unlabeled, "--data": labeled})
    cfg = build_config(config, ssft=ssft, reliability=reliability, qc=qc, qd=qd, mask_threshold=mask_threshold,
                       restart_from_pretrained=restart_from_pretrained, steps=steps, ssft_steps=ssft_steps, lr=lr,
                       batch_size=batch_size, patch=patch, roi=roi, seed=seed, true_dice=true_dice)
    pool = load_data(unlabeled)
    if labeled is not None:
        labeled_set = load_data(labeled)
    else:
        labeled_set = pool.subset(read_case_ids(labeled_ids))
    n_truth = sum(c.label_path is not None for c in pool.cases if c.case_id not in set(labeled_set.case_ids))
    if n_truth and cfg.record_true_dice and cfg.ssft:
        console.print(f"[dim]{n_truth} pool cases have labels: read only to score pseudo-labels, never to train[/]")
    from assft.finetune.ssft import run_ssft

    result = run_ssft(model, labeled_set, pool, out, cfg, save_pseudo_labels=save_pseudo_labels,
                      allow_partial=allow_partial)
    from assft.utils.distributed import join_process_group

    if join_process_group().is_main:  # under torchrun rank 0 alone writes and prints
        _print_summary(result, cfg, out)


def plot_pseudo_labels(
    tables: list[Path] = typer.Argument(..., exists=True, dir_okay=False, help="pseudo_labels.csv, one per round."),
    out: Path = typer.Option(..., "--out", help="PNG to write."),
    names: str = typer.Option(None, "--names", help="Comma-separated label per table (default round 1, 2, ...)."),
) -> None:
    """Figure 5: true Dice of selected vs unselected pseudo-labels (needs ground truth for the pool)."""
    from assft.cli.common import check_output_file

    check_output_file(out, inputs={f"table {i + 1}": t for i, t in enumerate(tables)}, kind="figure")
    from assft.reporting.pseudo_labels_plot import plot_pseudo_label_dice  # after the check: loads matplotlib
    path = plot_pseudo_label_dice(list(tables), out, names=names.split(",") if names else None)
    console.print(f"wrote {path}")


def build_config(config_file: Path | None, *, ssft: bool | None, reliability: str | None, qc: float | None,
                 qd: float | None, mask_threshold: float | None, restart_from_pretrained: bool | None,
                 steps: int | None, ssft_steps: int | None, lr: float | None, batch_size: int | None,
                 patch: str | None, roi: str | None, seed: int | None, true_dice: bool | None):  # -> FinetuneConfig
    """FinetuneConfig from an optional file plus the options that were given."""
    from assft.config import load_config, parse_config

    base = load_config(config_file, FinetuneConfig) if config_file else FinetuneConfig()
    raw: dict[str, Any] = base.model_dump(mode="json")
    if ssft is not None:
        # The switch overrides the file's reliability; FinetuneConfig reconciles it with a --reliability given here.
        raw["ssft"] = ssft
        if reliability is None:
            raw["pseudo"].pop("reliability")
    pseudo = {"reliability": reliability, "qc": qc, "qd": qd}
    raw["pseudo"].update({k: v for k, v in pseudo.items() if v is not None})
    if mask_threshold is not None:
        raw["pseudo"]["mask_threshold"] = mask_threshold
    train = {"steps": steps, "lr": lr, "batch_size": batch_size, "patch_size": parse_triple(patch, "--patch")}
    raw["train"].update({k: v for k, v in train.items() if v is not None})
    top = {"ssft_steps": ssft_steps, "seed": seed, "restart_from_pretrained": restart_from_pretrained,
           "record_true_dice": true_dice}
    raw.update({k: v for k, v in top.items() if v is not None})
    if roi is not None:
        raw["inference"] = {**(raw.get("inference") or {}), "roi_size": parse_triple(roi, "--roi")}
    return parse_config(raw, FinetuneConfig, source=config_file)


def _print_summary(result: Any, cfg: Any, out: Path) -> None:
    from rich.table import Table

    from assft.finetune.pseudo_labels import summarize_pseudo_label_dice

    style = "yellow" if result.head.action == "replaced" else "dim"
    console.print(f"[{style}]head: {result.head.reason}[/]")
    table = Table(title="assft finetune", show_header=True)
    table.add_column("stage")
    table.add_column("what")
    table.add_column("seconds", justify="right")
    t = result.timings
    table.add_row("1", f"{len(result.labeled_ids)} labeled cases, {cfg.train.steps} steps", f"{t['stage1']:.0f}")
    if cfg.ssft:
        r = result.reliable
        thr = ", ".join(x for x in (f"conf >= {r.conf_threshold:.3g}" if r.conf_threshold is not None else "",
                                    f"sd <= {r.sd_threshold:.3g}" if r.sd_threshold is not None else "") if x)
        table.add_row("2", f"{len(r.case_ids)} of {len(result.table)} pseudo-labels kept ({r.reliability}"
                      f"{'; ' + thr if thr else ''})",
                      f"{t.get('stage2_score', 0.0) + t.get('stage2_pseudo_labels', 0.0):.0f}")
        ran = "stage3" in t
        table.add_row("3", f"labeled + pseudo-labeled, {cfg.ssft_steps} steps" if ran else "skipped (R is empty)",
                      f"{t.get('stage3', 0.0):.0f}")
    console.print(table)
    summary = summarize_pseudo_label_dice(result.table)
    if summary["selected"]["n"] + summary["unselected"]["n"]:
        parts = [f"{k} {v['median']:.3f} (n={v['n']})" for k, v in summary.items() if v["n"]]
        console.print("median true Dice of pseudo-labels: " + ", ".join(parts))
        from assft.reporting.pseudo_labels_plot import plot_pseudo_label_dice

        png = plot_pseudo_label_dice(result.table, out / "pseudo_label_dice.png")
        console.print(f"wrote {png}")
    console.print(f"wrote {result.checkpoint}" + (f", {result.table_path}" if result.table_path else "")
                  + f", {result.log_path}")
