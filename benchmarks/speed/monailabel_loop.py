"""One full MONAI Label loop on generated volumes, timed: score -> next sample (two annotators) -> save a label ->
train (SSFT) -> next sample, through MONAI Label's own FastAPI app (TestClient), with the app `assft monailabel app`
writes. Needs the extra (`PIP_CONSTRAINT=.ci/constraints.txt pip install -e ".[monailabel]"`).

    python benchmarks/speed/monailabel_loop.py --out benchmarks/results/monailabel_loop.json

Prints every id, its scores and the time each step took; the JSON keeps them (docs/monailabel.md quotes it).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/monailabel_loop.json"))
    parser.add_argument("--cases", type=int, default=12)
    parser.add_argument("--size", type=int, default=32, help="phantom edge length (voxels)")
    parser.add_argument("--source-steps", type=int, default=60)
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()

    import torch

    from assft.config import ModelConfig, TrainConfig
    from assft.data import load_dataset
    from assft.data.synthetic import make_phantom_dataset
    from assft.integrations.monailabel.generator import write_app
    from assft.pretrain.supervised import train_supervised
    from assft.utils.provenance import versions

    torch.set_num_threads(2)
    work = args.work or Path(tempfile.mkdtemp(prefix="assft-monailabel-"))
    shutil.rmtree(work, ignore_errors=True)
    edge = (args.size,) * 3
    spec = load_dataset(make_phantom_dataset(work / "data", args.cases, shape=edge, seed=0))
    t0 = time.perf_counter()
    model = train_supervised(spec.subset(spec.case_ids[:3]), work / "source", model_config=ModelConfig(out_channels=5),
                             train_config=TrainConfig(steps=args.source_steps, batch_size=2, patch_size=edge)).best
    source_s = time.perf_counter() - t0
    studies = work / "studies"
    studies.mkdir()
    for case in spec.cases:
        shutil.copyfile(case.image_path, studies / case.image_path.name)
    test_set = make_phantom_dataset(work / "test", 4, shape=edge, seed=1)  # monitoring: Dice after the round
    app_dir = write_app(work / "app", model, test=test_set)

    from fastapi.testclient import TestClient
    from monailabel.config import settings

    settings.MONAI_LABEL_APP_DIR, settings.MONAI_LABEL_STUDIES = str(app_dir), str(studies)
    settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD = False
    from monailabel.app import app

    steps: list[dict] = []

    def step(name: str, call):
        start = time.perf_counter()
        result = call()
        seconds = time.perf_counter() - start
        shown = {k: result.get(k) for k in ("id", "scores", "rationale", "round", "scored", "message", "model")
                 if isinstance(result, dict) and k in result}
        steps.append({"step": name, "seconds": round(seconds, 2), **shown})
        print(f"{name:<40} {seconds:7.2f} s  {json.dumps(shown)[:300]}")
        return result

    with TestClient(app) as client:
        step("score the pool (θ0)", lambda: client.post("/scoring/assft?run_sync=true").json())
        first = step("next sample (annotator 1)", lambda: client.post("/activelearning/assft",
                                                                      json={"client_id": "1"}).json())
        step("next sample (annotator 2)", lambda: client.post("/activelearning/assft", json={"client_id": "2"}).json())

        def save() -> dict:
            label = spec.get(first["id"]).label_path  # the ground truth plays the annotator
            with open(label, "rb") as fh:
                return client.put(f"/datastore/label?image={first['id']}", files={"label": (label.name, fh)}).json()

        step(f"save the label of {first['id']}", save)
        step("train (SSFT round, then re-score)", lambda: client.post("/train/assft?run_sync=true").json())
        step("next sample (annotator 1)", lambda: client.post("/activelearning/assft", json={"client_id": "1"}).json())

    from assft.reporting.report import write_report

    t0 = time.perf_counter()
    report = write_report(app_dir / "campaign", work / "report")
    report_s = time.perf_counter() - t0
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{torch.get_num_threads()} torch threads, CPU", "versions": versions(),
              "cases": args.cases, "shape": list(edge), "source_training_s": round(source_s, 1), "steps": steps,
              "report": {"seconds": round(report_s, 2), "markdown": report.markdown.name}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
