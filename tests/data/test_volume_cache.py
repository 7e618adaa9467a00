"""The preprocessed-volume cache returns exactly what `load_case` returns, reads each volume once, and never serves
a stale entry."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from assft.config import PreprocessConfig
from assft.data import load_dataset
from assft.data.preprocess import load_case, load_case_uncached
from assft.data.synthetic import make_phantom_dataset
from assft.data.volume_cache import active_volume_cache, use_volume_cache


@pytest.fixture()
def spec(tmp_path: Path):
    return load_dataset(make_phantom_dataset(tmp_path / "data", 3, shape=(12, 14, 10), seed=3))


def _same(a, b) -> None:
    assert a.case_id == b.case_id and a.original_shape == b.original_shape and a.spacing == b.spacing
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.affine, b.affine)
    if a.label is None:
        assert b.label is None
    else:
        assert b.label.dtype == np.int64
        np.testing.assert_array_equal(a.label, b.label)


def test_cached_volumes_equal_the_files_and_are_read_once(spec, tmp_path: Path, monkeypatch) -> None:
    import assft.data.preprocess as preprocess

    reads = []
    real = preprocess.load_case_uncached
    monkeypatch.setattr(preprocess, "load_case_uncached",
                        lambda case, config, with_label=True: reads.append(case.case_id) or real(case, config,
                                                                                                  with_label=with_label))
    with use_volume_cache(tmp_path / "cache") as cache:
        for _ in range(3):  # three rounds over the pool
            for case in spec.cases:
                for with_label in (True, False):
                    _same(real(case, PreprocessConfig(), with_label=with_label), load_case(case, with_label=with_label))
    assert sorted(reads) == sorted([c.case_id for c in spec.cases] * 2)  # once per (case, with_label)
    assert (cache.misses, cache.hits) == (6, 12)
    assert active_volume_cache() is None  # the block ends the cache


def test_a_changed_file_or_preprocessing_is_never_served_stale(spec, tmp_path: Path) -> None:
    import nibabel as nib

    case = spec.cases[0]
    with use_volume_cache(tmp_path / "cache") as cache:
        before = load_case(case)
        other = load_case(case, PreprocessConfig(normalization="percentile"))
        assert not np.array_equal(before.image, other.image) and cache.misses == 2
        img = nib.load(case.image_path)
        nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj) * 2.0 + 1.0, img.affine), case.image_path)
        os.utime(case.image_path, ns=(1, 1))  # a different modification time even on a coarse clock
        after = load_case(case)
        assert cache.misses == 3
        _same(load_case_uncached(case, PreprocessConfig()), after)


def test_in_place_edits_never_reach_the_cache(spec, tmp_path: Path) -> None:
    with use_volume_cache(tmp_path / "cache"):
        first = load_case(spec.cases[0])
        second = load_case(spec.cases[0])  # a hit: memory-mapped copy-on-write
        second.image[...] = 0.0
        third = load_case(spec.cases[0])
    np.testing.assert_array_equal(first.image, third.image)
    assert float(np.abs(third.image).sum()) > 0


def test_a_damaged_entry_is_rebuilt(spec, tmp_path: Path) -> None:
    with use_volume_cache(tmp_path / "cache") as cache:
        load_case(spec.cases[0])
        for npy in (tmp_path / "cache").glob("*.image.npy"):
            npy.write_bytes(b"not an array")
        _same(load_case_uncached(spec.cases[0], PreprocessConfig()), load_case(spec.cases[0]))
        assert cache.misses == 2
