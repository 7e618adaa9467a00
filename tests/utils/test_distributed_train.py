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


def _as_rank(rank: int, port: int) -> None:
    """The environment torchrun gives rank `rank` of 2, and one thread (2 processes on 2 cores)."""
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)


def _both(rank: int, port: int, data: str, out: str) -> None:
    """One of 2 torchrun-like ranks: `fit` (DDP) on 3 cases, then SSFT stage 2's pool scoring of the other 4 (from
    the untrained model); rank 0 pickles (weights, gathered rows, pictured ids)."""
    import pickle

    _as_rank(rank, port)
    spec = load_dataset(data)
    state = trainer.fit(_model(), [load_case(c) for c in spec.cases[:3]], TRAIN, 5).last_state
    pictures: dict = {}
    rows = _score(spec, pictures)
    if rank == 0:
        Path(out).write_bytes(pickle.dumps((state, rows, sorted(pictures))))


def _score(spec, pictures: dict | None = None) -> list:
    from assft.config import InferenceConfig, PreprocessConfig
    from assft.finetune.config import PseudoLabelConfig
    from assft.finetune.pseudo_labels import score_pool

    return score_pool(_model().eval(), MODEL, [load_case(c) for c in spec.cases[:2]], spec.cases[2:], {},
                      PreprocessConfig(), InferenceConfig(roi_size=(16, 16, 16)), PseudoLabelConfig(), {0: "bg"},
                      pictures=pictures)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple]:
    """One spawn of 2 gloo ranks shared by the tests below: (data folder, rank 0's (weights, rows, pictured))."""
    import pickle

    root = tmp_path_factory.mktemp("ddp")
    data = make_phantom_dataset(root / "data", 7, shape=(16, 16, 16))
    torch.multiprocessing.start_processes(_both, args=(_free_port(), str(data), str(root / "rank0.pkl")), nprocs=2,
                                          start_method="spawn")
    return data, pickle.loads((root / "rank0.pkl").read_bytes())


@pytest.mark.timeout(300)
def test_two_ddp_ranks_step_like_one_process_over_their_patches(two_ranks) -> None:
    data, (ddp, _, _) = two_ranks
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


@pytest.mark.slow
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


@pytest.mark.timeout(300)
def test_ssft_pool_scoring_over_two_ranks_equals_one_process(two_ranks) -> None:
    data, (_, rows, pictured) = two_ranks
    spec = load_dataset(data)
    single = _score(spec)
    assert [r.case_id for r in rows] == [r.case_id for r in single] == [c.case_id for c in spec.cases[2:]]
    assert pictured == sorted(c.case_id for c in spec.cases[2:])  # every rank's gallery slices reach rank 0
    for mine, one in zip(rows, single):
        assert mine.conf == pytest.approx(one.conf, abs=1e-6) and mine.sd == pytest.approx(one.sd, abs=1e-6)
        assert mine.fg_voxels == one.fg_voxels
