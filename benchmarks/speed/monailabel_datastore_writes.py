"""Why the MONAI Label app writes its image records in one batch: MONAI Label's LocalDatastore rewrites its whole
JSON file on every `update_image_info`, so N records one by one cost N whole-file writes (quadratic in the pool).

    python benchmarks/speed/monailabel_datastore_writes.py --images 100 400 --out benchmarks/results/monailabel_datastore_writes.json

Needs the extra. Each record has the size of a real one (scalars and a 256-float embedding).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def measure(n: int, work: Path) -> dict:
    """Seconds to store n records one by one (update_record) and as one batch (update_records)."""
    import nibabel as nib
    from monailabel.datastore.local import LocalDatastore

    from assft.integrations.monailabel.state import update_record, update_records

    root = work / f"studies{n}"
    root.mkdir()
    image = nib.Nifti1Image(np.zeros((8, 8, 8), np.float32), np.eye(4))
    for i in range(n):
        nib.save(image, root / f"img_{i:04d}.nii.gz")
    store = LocalDatastore(str(root), extensions=["*.nii.gz"], auto_reload=False)
    rng = np.random.default_rng(0)
    records = {i: {"model_version": "0123456789abcdef",
                   "summary": {"kd": 1.0, "asd": 0.5, "embedding": rng.random(256).tolist()}}
               for i in store.list_images()}
    start = time.perf_counter()
    for image_id, fields in records.items():
        update_record(store, image_id, **fields)
    one_by_one = time.perf_counter() - start
    start = time.perf_counter()
    update_records(store, records)
    batch = time.perf_counter() - start
    return {"images": n, "one_by_one_s": round(one_by_one, 3), "one_batch_s": round(batch, 4),
            "datastore_json_mb": round((root / "datastore_v2.json").stat().st_size / 1e6, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[100, 400])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/monailabel_datastore_writes.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="assft-ds-"))
    try:
        rows = [measure(n, work) for n in args.images]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for row in rows:
        print(row)
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
