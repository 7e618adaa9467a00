"""Shared fixtures: tiny generated datasets and nets (seconds on 2 CPU cores), and the real hippocampus data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from assft.config import InferenceConfig, ModelConfig, TrainConfig

HIPPOCAMPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hippocampus"

torch.set_num_threads(1)  # tiny tensors: threading overhead outweighs the second core


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files that hold slow tests run first, otherwise the collection order is kept.

    Why: the suite runs as `pytest -n 2` with `--dist loadfile --no-loadscope-reorder` (pyproject), so xdist hands
    whole files to the two workers in this order; a long file handed out last would leave one worker idle while the
    other finishes it.
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: each file's tests stay together, in order


@pytest.fixture(autouse=True)
def _fixed_threads():
    """Every test starts and ends with one thread and no load-following governor: an in-process CLI call installs
    one (`set_thread_policy`), and a thread count that follows a busy machine mid-session would make two seeded runs
    of a later test differ in float rounding."""
    import assft.utils.threads as threads

    yield
    threads._GOVERNOR = threads.ThreadGovernor(enabled=False)
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six 16^3 CT phantoms in MSD layout (labels 0..4)."""
    from assft.data.synthetic import make_phantom_dataset

    return make_phantom_dataset(tmp_path_factory.mktemp("phantoms"), 6, shape=(16, 16, 16), seed=0)


@pytest.fixture()
def tiny_model_config() -> ModelConfig:
    """A 2-level UNet small enough for 16^3 volumes."""
    return ModelConfig(name="unet", out_channels=5, params={"channels": (4, 8, 16), "strides": (2, 2)})


@pytest.fixture()
def tiny_inference() -> InferenceConfig:
    """One 16^3 window, no channels_last (fastest for tiny nets)."""
    return InferenceConfig(roi_size=(16, 16, 16), sw_batch_size=1, channels_last=False)


@pytest.fixture()
def tiny_train() -> TrainConfig:
    """Three steps on 16^3 patches."""
    return TrainConfig(steps=3, batch_size=2, patch_size=(16, 16, 16), val_every=3)


@pytest.fixture(scope="session")
def hippocampus_dir() -> Path:
    """The real MSD hippocampus data; tests using it skip cleanly when it is absent."""
    if not (HIPPOCAMPUS / "dataset.json").exists():
        pytest.skip("../shared/data/hippocampus is absent")
    return HIPPOCAMPUS
