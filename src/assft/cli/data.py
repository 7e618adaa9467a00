"""`assft data check|split|phantoms`."""

from __future__ import annotations

from pathlib import Path

import typer

from assft.cli.common import check_output_dir, check_output_file, console, parse_fractions

app = typer.Typer(no_args_is_help=True)


@app.command("check")
def check(path: Path = typer.Argument(..., help="Dataset folder (MSD, nnU-Net v2, or a folder of images)."),
          header_only: bool = typer.Option(False, help="Read headers only (fast; skips NaN and label-value checks).")) -> None:
    """Validate a dataset and print a summary; exits 1 when there are problems."""
    import numpy as np
    from rich.table import Table

    from assft.data.checks import check_dataset
    from assft.data.layout import load_dataset

    spec = load_dataset(path)
    report = check_dataset(spec, read_data=not header_only)
    table = Table(title=f"{spec.name} ({spec.layout} layout)", show_header=False)
    table.add_row("cases", f"{report.num_cases} ({report.num_labeled} labeled)")
    table.add_row("labels", ", ".join(f"{k}={v}" for k, v in sorted(spec.labels.items())) or "-")
    if report.shapes:
        shapes = np.array(report.shapes)[:, :3]
        table.add_row("shape min / median / max", " / ".join(
            "x".join(str(int(v)) for v in f(shapes, axis=0)) for f in (np.min, np.median, np.max)))
        table.add_row("spacings", ", ".join(sorted({"x".join(f"{s:g}" for s in sp) for sp in report.spacings})[:4]))
    if report.label_counts:
        table.add_row("label voxels", ", ".join(f"{k}: {v}" for k, v in report.label_counts.items()))
    table.add_row("problems", str(len(report.problems)))
    console.print(table)
    for problem in report.problems:
        console.print(f"[red]problem[/] {problem}", highlight=False, soft_wrap=True)
    if report.problems:
        raise typer.Exit(1)


@app.command("split")
def split(path: Path = typer.Argument(..., help="Dataset folder."),
          out: Path = typer.Option(..., "--out", help="Split JSON to write."),
          fractions: str = typer.Option("source=0.3,pool=0.5,test=0.2",
                                        help="name=fraction (or name=count) pairs; fractions sum to <= 1."),
          seed: int = typer.Option(0, help="Seed of the shuffle.")) -> None:
    """Write a deterministic split of the dataset's case ids."""
    from assft.data.layout import load_dataset
    from assft.data.splits import make_split, save_split

    check_output_file(out, inputs={"dataset": path})
    spec = load_dataset(path)
    fr = parse_fractions(fractions)
    splits = make_split(spec.case_ids, fr, seed)
    save_split(out, splits, seed=seed, fractions=fr, dataset=path)
    console.print(f"wrote {out}: " + ", ".join(f"{k}={len(v)}" for k, v in splits.items()))


@app.command("phantoms")
def phantoms(out: Path = typer.Option(..., "--out", help="Folder to write (MSD layout)."),
             n: int = typer.Option(12, "--n", min=1, help="Number of cases."),
             size: int = typer.Option(32, min=8, help="Cube edge in voxels."),
             contrast: str = typer.Option("ct", help="Intensity model: ct or mr."),
             seed: int = typer.Option(0, help="Seed.")) -> None:
    """Generate small abdominal-like phantoms (body + 4 organs) for tests and the demo."""
    from assft.data.synthetic import make_phantom_dataset
    from assft.utils.paths import check_generated_folder

    check_output_dir(out)
    check_generated_folder(out, "phantoms")
    make_phantom_dataset(out, n, shape=(size, size, size), seed=seed, contrast=contrast)
    console.print(f"wrote {n} {contrast} phantoms to {out}")
