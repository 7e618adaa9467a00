"""`assft data check|init|split|phantoms`."""

from __future__ import annotations

from pathlib import Path

import typer

from assft.cli.common import check_output_dir, check_output_file, console, parse_fractions

app = typer.Typer(no_args_is_help=True)


@app.command("check")
def check(path: Path = typer.Argument(..., help="Dataset folder (MSD, nnU-Net v2, or a plain folder of volumes: "
                                       "NIfTI, NRRD, MHA/MHD files or one DICOM series per sub-folder)."),
          header_only: bool = typer.Option(False, help="Read headers only (fast; skips NaN and label-value checks)."),
          model: Path = typer.Option(None, "--model", help="Checkpoint: also report volumes whose orientation or "
                                                           "spacing differs from the model's, and what assft does.")
          ) -> None:
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
    for name, why in spec.not_read:
        console.print(f"[yellow]not read:[/] {name} ({why})", highlight=False, soft_wrap=True)
    if not spec.labels:
        from assft.data.dataset_init import classes_fix

        console.print("[yellow]no classes:[/] the folder has no dataset.json naming its classes; train needs them, "
                      "finetune and campaign check label values against them (else the checkpoint's); adapt and "
                      "query do not. Fix: "
                      f"{classes_fix(path, list(report.label_counts))}", highlight=False, soft_wrap=True)
    if model is not None:
        _print_model_grid(spec, model)
    for problem in report.problems:
        console.print(f"[red]problem[/] {problem}", highlight=False, soft_wrap=True)
    if report.problems:
        raise typer.Exit(1)


def _print_model_grid(spec, model: Path) -> None:
    """One line per (orientation, spacing) group: as the model expects, or what assft does to it and back."""
    from assft.data.checks import model_grid_report
    from assft.models.checkpoint import load_checkpoint

    pre = load_checkpoint(model).preprocess
    if pre.scheme == "nnunetv2":  # nnU-Net's preprocessor decides the grid; assft's orientation/spacing do not apply
        configuration = pre.nnunet.plans.get("configurations", {}).get(pre.nnunet.configuration, {})  # type: ignore[union-attr]
        spacing = configuration.get("spacing")
        to = f", spacing {' x '.join(f'{s:g}' for s in spacing)} mm in nnU-Net's axis order" if spacing else ""
        console.print(f"model {model.name} takes nnU-Net's own preprocessing ({pre.nnunet.configuration}{to}): "  # type: ignore[union-attr]
                      "nnU-Net's code crops, resamples and returns every volume to its own grid", highlight=False,
                      soft_wrap=True)
        return
    wants = [f"orientation {pre.orientation}" if pre.orientation else "orientation as stored",
             "spacing " + (" x ".join(f"{s:g}" for s in pre.target_spacing) + " mm" if pre.target_spacing
                           else "as stored")]
    console.print(f"model {model.name} expects {', '.join(wants)}", highlight=False)
    for group in model_grid_report(spec, pre):
        where = f"{len(group.case_ids)} volumes {group.orientation} {' x '.join(f'{s:g}' for s in group.spacing)} mm"
        if group.changes:
            console.print(f"[yellow]differs[/] {where}: assft will {'; '.join(group.changes)} on every pass, and "
                          "write predictions, probabilities and pseudo-labels back on each volume's own grid",
                          highlight=False, soft_wrap=True)
        else:
            console.print(f"[green]matches[/] {where}: used as stored", highlight=False, soft_wrap=True)
    if not (pre.orientation or pre.target_spacing):
        console.print("the model records no orientation or spacing: every volume is scored on its own grid "
                      "(record them with `assft import ... --orientation RAS --spacing 1,1,1`)", highlight=False)


@app.command("init")
def init(path: Path = typer.Argument(..., help="A plain folder of volumes (or imagesTr/ + labelsTr/)."),
         classes: str = typer.Option(..., "--classes", help="Class value:name pairs, e.g. "
                                     "0:background,1:anterior,2:posterior (0 is the background)."),
         modality: str = typer.Option("unknown", "--modality", help="Written to dataset.json (e.g. MRI, CT)."),
         force: bool = typer.Option(False, "--force", help="Replace an existing dataset.json.")) -> None:
    """Write PATH/dataset.json naming the classes of a plain folder, so labeled commands can use it."""
    from assft.data.dataset_init import init_dataset_json, parse_classes
    from assft.data.layout import load_dataset

    names = parse_classes(classes)
    spec = load_dataset(path)
    written = init_dataset_json(spec, names, force=force, modality=modality)
    labeled = sum(c.label_path is not None for c in spec.cases)
    console.print(f"wrote {written}: {len(spec.cases)} cases ({labeled} labeled), classes "
                  + ", ".join(f"{k}={v}" for k, v in names.items()))
    for name, why in spec.not_read:
        console.print(f"[yellow]not listed:[/] {name} ({why})", highlight=False, soft_wrap=True)


@app.command("split")
def split(path: Path = typer.Argument(..., help="Dataset folder."),
          out: Path = typer.Option(..., "--out", help="Split JSON to write."),
          fractions: str = typer.Option("source=0.3,pool=0.5,test=0.2",
                                        help="name=fraction (or name=count) pairs; fractions sum to <= 1."),
          seed: int = typer.Option(0, help="Seed of the shuffle.")) -> None:
    """Write a deterministic split of the dataset's case ids."""
    from assft.cli.common import load_data
    from assft.data.splits import make_split, save_split

    check_output_file(out, inputs={"dataset": path}, kind="split")
    spec = load_data(path)
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

    from assft.data.limits import check_free_space, check_requested_size

    check_output_dir(out)
    check_generated_folder(out, "phantoms")
    check_requested_size((size, size, size), "--size")
    # Upper estimate: a float32 image and a uint8 label per case, before compression.
    check_free_space(out, n * size**3 * 5, f"{n} phantoms of {size}^3")
    make_phantom_dataset(out, n, shape=(size, size, size), seed=seed, contrast=contrast)
    console.print(f"wrote {n} {contrast} phantoms to {out}")
