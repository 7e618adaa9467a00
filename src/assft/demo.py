"""The end-to-end demo: a source model, a shifted target pool, a 3-round campaign per strategy, and the report.

Embedded default: CT-like phantoms as the source domain and MR-like phantoms as the target (a modality shift).
With `data`, a real labeled dataset (e.g. MSD hippocampus) is split into source / pool / test and the pool and test
cases are moved into a simulated target domain.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from assft.campaign.experiment import SimulationConfig
from assft.campaign.simulate import run_simulation
from assft.config import ModelConfig, TrainConfig
from assft.data import load_dataset, make_split, save_split
from assft.utils.atomic import atomic_write_json
from assft.utils.paths import check_generated_folder, mark_generated_folder

DEMO_STRATEGIES = ("assft", "random", "fg-random")


def _phantom_setup(out: Path, seed: int) -> tuple[Path, Path, tuple[int, int, int], dict[str, list[str]]]:
    from assft.data.synthetic import make_phantom_dataset

    source = make_phantom_dataset(out / "source_ct", 16, shape=(32, 32, 32), seed=seed, contrast="ct")
    target = make_phantom_dataset(out / "target_mr", 24, shape=(32, 32, 32), seed=seed + 1, contrast="mr")
    ids = load_dataset(target).case_ids
    return source, target, (32, 32, 32), {"pool": ids[:16], "test": ids[16:]}


def _real_setup(data: Path, out: Path, seed: int, domain: str) -> tuple[Path, Path, tuple[int, int, int], dict[str, list[str]]]:
    from assft.domains import apply_domain_to_dataset

    spec = load_dataset(data)
    split = make_split(spec.case_ids, {"source": 30, "pool": 40, "test": 20}, seed)
    target = out / f"target_{domain}"
    if not (target / "dataset.json").exists():
        subset = out / "target_cases"
        _copy_subset(spec, split["pool"] + split["test"], subset)
        apply_domain_to_dataset(subset, target, domain, seed)
    source = out / "source_cases"
    if not (source / "dataset.json").exists():
        _copy_subset(spec, split["source"], source)
    return source, target, (40, 56, 40), {"pool": split["pool"], "test": split["test"]}


def _copy_subset(spec, case_ids: list[str], folder: Path) -> None:
    import shutil

    from assft.data.io import write_msd_dataset_json

    for case in spec.subset(case_ids).cases:
        for sub, path in (("imagesTr", case.image_path), ("labelsTr", case.label_path)):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, folder / sub / path.name)
    write_msd_dataset_json(folder, sorted(case_ids), spec.labels, name=f"{spec.name}-subset", modality=spec.modality)


def run_demo(out: str | Path = "assft_demo", *, data: str | Path | None = None, seed: int = 0,
             source_steps: int | None = None, round_steps: int | None = None, domain: str = "bias",
             log: Any = None) -> dict[str, Any]:
    """Run the whole demo into `out`; returns paths and timings (the report is in out/report).

    Every phase and campaign step is announced on stderr (rich on a terminal, timestamped lines otherwise) and a long
    step prints a line at least every 30 s; `with silenced(): ...` (`assft.utils.progress`) silences that. `log`, if
    given, also receives each phase's headline (e.g. for a GUI).
    """
    from assft.utils.progress import reporting

    with reporting() as report:
        def phase(headline: str) -> Any:
            if log is not None:
                log(headline)
            return report.step(headline)

        def announce(headline: str) -> None:  # a phase made of steps of its own (each campaign's rounds)
            if log is not None:
                log(headline)
            report.line(headline)

        return _run_demo(Path(out).resolve(), data, seed, source_steps, round_steps, domain, phase, announce)


def _run_demo(out: Path, data: str | Path | None, seed: int, source_steps: int | None, round_steps: int | None,
              domain: str, phase: Any, announce: Any) -> dict[str, Any]:
    from assft.campaign.simulate import compute_bounds
    from assft.pretrain.supervised import train_supervised
    from assft.reporting import write_report

    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    if data is None:
        with phase("1/5 generating phantoms: 16 CT-like (source), 24 MR-like (target pool 16 + test 8)"):
            source, target, patch, split = _phantom_setup(out, seed)
        source_steps = source_steps or 250
        round_steps = round_steps or 40
    else:
        with phase(f"1/5 splitting {data} into source 30 / pool 40 / test 20 and simulating the '{domain}' domain"):
            source, target, patch, split = _real_setup(Path(data), out, seed, domain)
        source_steps = source_steps or 300
        round_steps = round_steps or 60
    save_split(out / "split.json", split, seed=seed, fractions={}, dataset=target)
    model = out / "source_model" / "best.pt"
    if not model.exists():
        with phase(f"2/5 training the source model (MONAI UNet, {source_steps} steps)"):
            train_supervised(load_dataset(source), out / "source_model", model_config=ModelConfig(),
                             train_config=TrainConfig(steps=source_steps, patch_size=patch, seed=seed,
                                                      val_every=source_steps))
    experiment = SimulationConfig(
        out=str(out / "runs"), model=str(model), data=str(target), split=str(out / "split.json"),
        strategies=list(DEMO_STRATEGIES), seeds=[seed], budget="30%", rounds=3,
        finetune={"train": {"steps": round_steps, "patch_size": list(patch), "batch_size": 2},
                  "ssft_steps": round_steps},
        inference={"roi_size": list(patch)}, figures=True,  # the report shows what was picked and why
    )
    # The bounds are part of the simulation; computed here (cached in runs/) so that their minutes get a headline. The
    # folder is the simulation's, so it carries the simulation's marker before the bounds land in it.
    check_generated_folder(experiment.out, "simulation", "out", signatures=("experiment.json",))
    mark_generated_folder(experiment.out, "simulation")
    with phase("3/5 bounds: the source model on the target test set, and the model fine-tuned on the whole pool"):
        for target_domain in experiment.domains if experiment.bounds else []:
            compute_bounds(experiment, target_domain)
    announce(f"4/5 simulated campaigns: {', '.join(DEMO_STRATEGIES)}; 3 rounds; ground truth plays the annotator")
    run_simulation(experiment, on_campaign=lambda d: announce(f"finished {d.relative_to(out)}"))
    with phase("5/5 writing the report"):
        report_files = write_report(out / "runs", out / "report")
    seconds = time.perf_counter() - start
    summary = {"out": str(out), "report": str(report_files.html), "report_md": str(report_files.markdown),
               "seconds": seconds}
    atomic_write_json(out / "demo.json", summary)
    return summary
