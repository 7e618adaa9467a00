"""DDP fine-tuning under torchrun's environment (gloo, 2 CPU processes).

"Consistent with one process" here means exact up to float rounding: with BatchNorm frozen (the one layer that sees
a rank's share alone) and no dropout (each rank draws its own masks) a DDP step over 2 ranks of 1 patch each equals a single-process step over the same 2 patches,
because the losses are means over equal batches and DDP averages the gradients.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from assft.config import ModelConfig, TrainConfig
from assft.data import load_dataset
from assft.data.preprocess import load_case
from assft.data.synthetic import make_phantom_dataset
from assft.finetune import trainer
from assft.models import build_model
from assft.utils.distributed import Ranks

MODEL = ModelConfig(out_channels=5, params={"channels": (4, 8, 16), "strides": (2, 2)}, dropout=0.0)
# SGD: its update is linear in the gradient, so rounding stays at rounding (AdamW's first steps divide the gradient by
# its own magnitude and turn 1e-9 differences of near-zero gradients into 1e-5 differences of weights)
TRAIN = TrainConfig(steps=2, batch_size=2, patch_size=(16, 16, 16), augment=False, bn_mode="frozen", optimizer="sgd",
                    lr=0.1, seed=3)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(MODEL)


def _rank(rank: int, port: int, data: str, out: str) -> None:
    """One torchrun-like process: the environment torchrun sets, then `fit`; rank 0 saves the weights."""
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    cases = [load_case(c) for c in load_dataset(data).cases[:3]]
    result = trainer.fit(_model(), cases, TRAIN, 5)
    if rank == 0:
        torch.save(result.last_state, out)


@pytest.mark.timeout(300)
def test_two_ddp_ranks_step_like_one_process_over_their_patches(tmp_path: Path) -> None:
    data = make_phantom_dataset(tmp_path / "data", 3, shape=(16, 16, 16))
    out = tmp_path / "ddp.pt"
    torch.multiprocessing.start_processes(_rank, args=(_free_port(), str(data), str(out)), nprocs=2,
                                          start_method="spawn")
    ddp = torch.load(out)
    cases = [load_case(c) for c in load_dataset(data).cases[:3]]

    # the single process sees, each step, the two ranks' patches side by side
    local = TRAIN.model_copy(update={"batch_size": 1})
    streams = [trainer.iter_batches(cases, local, trainer.rank_seed(TRAIN.seed, "labeled", Ranks(r, 2)))
               for r in range(2)]

    def both(*_args: object):
        while True:
            parts = [next(s) for s in streams]
            yield torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    original = trainer.iter_batches
    trainer.iter_batches = both  # type: ignore[assignment]
    try:
        single = trainer.fit(_model(), cases, TRAIN, 5).last_state
    finally:
        trainer.iter_batches = original  # type: ignore[assignment]
    moved = max(float((single[k].float() - _model().state_dict()[k].float()).abs().max()) for k in single)
    assert moved > 1e-3  # the steps did change the weights
    for key, value in single.items():
        assert torch.allclose(ddp[key].float(), value.float(), atol=1e-6), key


def test_a_global_batch_that_does_not_split_is_a_config_error() -> None:
    with pytest.raises(Exception, match="batch_size 3 does not split evenly over 2 processes"):
        trainer._data_parallel(_model(), TRAIN.model_copy(update={"batch_size": 3}), Ranks(0, 2))


@pytest.mark.timeout(300)
def test_torchrun_train_writes_one_checkpoint_set(tmp_path: Path) -> None:
    data = make_phantom_dataset(tmp_path / "data", 4, shape=(16, 16, 16))
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), "-m", "assft", "train",
                           "--data", str(data), "--out", str(out), "--steps", "2", "--batch-size", "2",
                           "--patch", "16,16,16"], capture_output=True, text=True, timeout=240,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt", "train_log.json"]
    assert done.stdout.count("trained on 4 cases") == 1  # rank 0 alone prints


def _score_rank(rank: int, port: int, data: str, out: str) -> None:
    """SSFT stage 2's pool scoring on one of 2 ranks; rank 0 saves the gathered rows."""
    import pickle

    from assft.config import InferenceConfig
    from assft.config import PreprocessConfig
    from assft.finetune.config import PseudoLabelConfig
    from assft.finetune.pseudo_labels import score_pool

    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    spec = load_dataset(data)
    labeled = [load_case(c) for c in spec.cases[:2]]
    pictures: dict = {}
    rows = score_pool(_model().eval(), MODEL, labeled, spec.cases[2:], {}, PreprocessConfig(),
                      InferenceConfig(roi_size=(16, 16, 16)), PseudoLabelConfig(), {0: "bg"}, pictures=pictures)
    if rank == 0:
        Path(out).write_bytes(pickle.dumps((rows, sorted(pictures))))


@pytest.mark.timeout(300)
def test_ssft_pool_scoring_over_two_ranks_equals_one_process(tmp_path: Path) -> None:
    import pickle

    from assft.config import InferenceConfig
    from assft.config import PreprocessConfig
    from assft.finetune.config import PseudoLabelConfig
    from assft.finetune.pseudo_labels import score_pool

    data = make_phantom_dataset(tmp_path / "data", 7, shape=(16, 16, 16))
    out = tmp_path / "rows.pkl"
    torch.multiprocessing.start_processes(_score_rank, args=(_free_port(), str(data), str(out)), nprocs=2,
                                          start_method="spawn")
    rows, pictured = pickle.loads(out.read_bytes())
    spec = load_dataset(data)
    single = score_pool(_model().eval(), MODEL, [load_case(c) for c in spec.cases[:2]], spec.cases[2:], {},
                        PreprocessConfig(), InferenceConfig(roi_size=(16, 16, 16)), PseudoLabelConfig(), {0: "bg"})
    assert [r.case_id for r in rows] == [r.case_id for r in single] == [c.case_id for c in spec.cases[2:]]
    assert pictured == sorted(c.case_id for c in spec.cases[2:])  # every rank's gallery slices reach rank 0
    for mine, one in zip(rows, single):
        assert mine.conf == pytest.approx(one.conf, abs=1e-6) and mine.sd == pytest.approx(one.sd, abs=1e-6)
        assert mine.fg_voxels == one.fg_voxels
