"""Tests for the simulated target domains (assft.domains.shifts)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from assft.data.io import read_volume, write_label_map, write_msd_dataset_json, write_volume
from assft.domains import (
    DEFAULT_SEVERITY,
    DOMAINS,
    apply_domain_to_dataset,
    apply_shift,
    describe_case,
    list_domains,
    rescale_intensity,
    thick_slices,
)
from assft.errors import ConfigError, DataError, UnknownNameError

ALL = ["identity", "t2like", "lowfield", "bias", "thickslice", "mixed"]
SHIFTS = [d for d in ALL if d not in ("identity", "mixed")]


def _image(seed: int = 0, scale: float = 1.7e6) -> np.ndarray:
    """A smooth-ish positive 16^3 image with a zero background border, on a raw scanner scale."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, 16)] * 3, indexing="ij")
    img = (2.0 + np.sin(3 * x) * np.cos(2 * y) + z) * (x**2 + y**2 + z**2 < 0.9) + 0.1 * rng.random((16,) * 3)
    img[0] = 0
    return (img * scale / img.max()).astype(np.float32)


def test_all_domains_registered_with_docs() -> None:
    described = list_domains()
    assert set(ALL) <= set(described)
    for name in ALL:
        assert f"default severity {DEFAULT_SEVERITY[name]:g}" in described[name]


@pytest.mark.parametrize("domain", ALL)
def test_deterministic_shape_finite(domain: str) -> None:
    img = _image()
    a = apply_shift(img, domain, case_id="case_1", seed=3)
    b = apply_shift(img.copy(), domain, case_id="case_1", seed=3)
    assert a.dtype == np.float32 and a.shape == img.shape
    assert np.all(np.isfinite(a))
    assert np.array_equal(a, b)


@pytest.mark.parametrize("domain", SHIFTS)
def test_case_and_seed_change_stochastic_shifts(domain: str) -> None:
    img = _image()
    a = apply_shift(img, domain, case_id="case_1", seed=3)
    assert not np.array_equal(a, apply_shift(img, domain, case_id="case_2", seed=3))
    assert not np.array_equal(a, apply_shift(img, domain, case_id="case_1", seed=4))


@pytest.mark.parametrize("domain", ALL)
def test_severity_zero_is_identity(domain: str) -> None:
    img = _image()
    out = apply_shift(img, domain, case_id="c", seed=0, severity=0.0)
    np.testing.assert_allclose(out, rescale_intensity(img), atol=1e-5)


@pytest.mark.parametrize("domain", SHIFTS)
def test_default_severity_changes_image(domain: str) -> None:
    img = _image()
    base = rescale_intensity(img)
    out = apply_shift(img, domain, case_id="c", seed=0)
    assert np.abs(out - base).mean() > 0.02
    weaker = apply_shift(img, domain, case_id="c", seed=0, severity=DEFAULT_SEVERITY[domain] / 3)
    assert np.abs(weaker - base).mean() < np.abs(out - base).mean()


def test_scale_invariance_of_rescale() -> None:
    img = _image(scale=1.7e6)
    img_uint8 = np.round(img / img.max() * 255).astype(np.uint8)
    a = rescale_intensity(img)
    b = rescale_intensity(img_uint8)
    assert a.min() == 0 and a.max() == 1
    np.testing.assert_allclose(a, b, atol=0.02)
    assert np.array_equal(rescale_intensity(np.zeros((4, 4, 4))), np.zeros((4, 4, 4), np.float32))


def test_t2like_is_non_monotonic() -> None:
    ramp = np.linspace(0.0, 1.0, 16**3, dtype=np.float32).reshape(16, 16, 16) + 1.0
    out = apply_shift(ramp, "t2like", case_id="c", seed=0).ravel()
    diffs = np.diff(out)
    assert (diffs > 1e-6).any() and (diffs < -1e-6).any()


def test_thick_slices_resamples_along_axis() -> None:
    x = np.random.default_rng(0).random((10, 11, 13))
    assert np.array_equal(thick_slices(x, 1, axis=2), x)
    for axis in range(3):
        for offset in range(4):
            out = thick_slices(x, 4, axis=axis, offset=offset)
            assert out.shape == x.shape
    const_along = np.broadcast_to(np.arange(13.0), (10, 11, 13))
    np.testing.assert_allclose(thick_slices(const_along, 4, axis=0, offset=1), const_along)
    # slab averaging keeps the mean roughly and removes high frequency along the axis only
    out = thick_slices(x, 4, axis=2)
    assert np.abs(np.diff(out, axis=2)).mean() < np.abs(np.diff(x, axis=2)).mean() / 2


def test_mixed_pool_is_heterogeneous() -> None:
    cases = [describe_case("mixed", f"case_{i:03d}", seed=0) for i in range(50)]
    subs = [c["sub_domain"] for c in cases]
    assert "identity" in subs
    assert len(set(subs) - {"identity"}) >= 3
    for c in cases:
        if c["sub_domain"] == "identity":
            assert not c["shifted"] and c["severity"] == 0
        else:
            default = DEFAULT_SEVERITY[c["sub_domain"]]
            assert 0.5 * default - 1e-6 <= c["severity"] <= default + 1e-6
    img = _image()
    ident = next(f"case_{i:03d}" for i, c in enumerate(cases) if not c["shifted"])
    np.testing.assert_array_equal(apply_shift(img, "mixed", case_id=ident, seed=0), rescale_intensity(img))


def test_describe_case_plain_domain() -> None:
    record = describe_case("bias", "c", 0)
    assert {k: record[k] for k in ("domain", "sub_domain", "severity", "shifted")} == {
        "domain": "bias", "sub_domain": "bias", "severity": DEFAULT_SEVERITY["bias"], "shifted": True,
    }
    assert set(record["params"]) == {"log_gamma", "coeffs"} and len(record["params"]["coeffs"]) == 20


def test_unknown_domain_suggests() -> None:
    with pytest.raises(UnknownNameError, match="t2like"):
        apply_shift(_image(), "t2lke", case_id="c", seed=0)
    with pytest.raises(UnknownNameError):
        DOMAINS.get("nope")


def test_bad_inputs() -> None:
    with pytest.raises(ConfigError, match="severity"):
        apply_shift(_image(), "bias", case_id="c", seed=0, severity=1.5)
    with pytest.raises(DataError, match="3D"):
        apply_shift(np.zeros((2, 8, 8, 8)), "bias", case_id="c", seed=0)
    bad = _image()
    bad[1, 1, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        apply_shift(bad, "bias", case_id="c", seed=0)


def _make_msd(root, n: int = 3) -> list[str]:
    ids = [f"hippocampus_{i:03d}" for i in range(n)]
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    for i, cid in enumerate(ids):
        write_volume(root / "imagesTr" / f"{cid}.nii.gz", _image(seed=i), affine)
        label = np.random.default_rng(i).integers(0, 3, (16, 16, 16))
        write_label_map(root / "labelsTr" / f"{cid}.nii.gz", label, affine)
    write_msd_dataset_json(root, ids, {0: "background", 1: "Anterior", 2: "Posterior"}, name="Hippo")
    return ids


@pytest.mark.parametrize("domain", ["mixed", "lowfield"])
def test_apply_domain_to_dataset(tmp_path, domain: str) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    ids = _make_msd(src)
    assert apply_domain_to_dataset(src, out, domain, seed=5) == out
    spec = json.loads((out / "dataset.json").read_text())
    assert spec["labels"] == {"0": "background", "1": "Anterior", "2": "Posterior"}
    prov = spec["assft_provenance"]
    assert prov["domain"] == domain and prov["seed"] == 5 and prov["source"] == str(src)
    assert prov["severity"] == DEFAULT_SEVERITY[domain]
    assert set(prov["cases"]) == set(ids)
    assert [e["image"] for e in spec["training"]] == [f"./imagesTr/{c}.nii.gz" for c in ids]
    for cid in ids:
        assert (out / "labelsTr" / f"{cid}.nii.gz").read_bytes() == (src / "labelsTr" / f"{cid}.nii.gz").read_bytes()
        lab_in, _ = read_volume(src / "labelsTr" / f"{cid}.nii.gz", dtype=np.uint8)
        lab_out, _ = read_volume(out / "labelsTr" / f"{cid}.nii.gz", dtype=np.uint8)
        assert np.array_equal(lab_in, lab_out)
        img_in, aff_in = read_volume(src / "imagesTr" / f"{cid}.nii.gz")
        img_out, aff_out = read_volume(out / "imagesTr" / f"{cid}.nii.gz")
        np.testing.assert_array_equal(aff_in, aff_out)
        np.testing.assert_array_equal(img_out, apply_shift(img_in, domain, case_id=cid, seed=5))
        assert prov["cases"][cid] == describe_case(domain, cid, 5)


def test_apply_domain_to_dataset_of_an_empty_folder(tmp_path) -> None:
    # read through assft.data like every command: a folder without dataset.json is a folder of images
    (tmp_path / "in").mkdir()
    with pytest.raises(DataError, match="no cases found"):
        apply_domain_to_dataset(tmp_path / "in", tmp_path / "out", "bias", seed=0)
    with pytest.raises(UnknownNameError):
        apply_domain_to_dataset(tmp_path / "in", tmp_path / "out", "bais", seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # nothing written, no staging folder left


# --- multisite: sites with parameters fixed per site, unequal shares, recorded provenance --------------------------


def test_multisite_sites_are_fixed_per_site_and_distinct() -> None:
    from assft.domains.plans import MIXED_SUBDOMAINS, multisite_sites

    sites = multisite_sites(0)
    assert sites == multisite_sites(0)  # a pure function of the seed
    assert sorted(k for k, _, _ in (sites[s] for s in (1, 2, 3, 4))) == sorted(MIXED_SUBDOMAINS)  # one type each
    assert sites[0] == ("identity", 0.0, {})
    assert multisite_sites(1) != sites  # another domain seed, other sites
    # every case of a site gets exactly the site's parameters (not a per-volume draw)
    by_site: dict = {}
    for i in range(200):
        record = describe_case("multisite", f"case_{i:03d}", 0)
        by_site.setdefault(record["site"], []).append(record)
    for site, records in by_site.items():
        kind, severity, params = sites[site]
        assert all(r["sub_domain"] == kind and r["params"] == params for r in records)
        assert all(r["severity"] == round(severity, 6) for r in records)


def test_multisite_shares_follow_the_plan() -> None:
    from assft.domains.plans import MULTISITE_SHARES

    n = 4000
    counts = np.bincount([describe_case("multisite", f"id{i}", 3)["site"] for i in range(n)], minlength=5) / n
    expected = np.array([1 - sum(MULTISITE_SHARES), *MULTISITE_SHARES])
    assert np.abs(counts - expected).max() < 0.025  # 4000 draws: sd of a share <= 0.008


def test_multisite_noise_is_per_volume_but_deterministic() -> None:
    from assft.domains.plans import multisite_sites

    sites = multisite_sites(0)
    lowfield_site = next(s for s, (kind, _, _) in sites.items() if kind == "lowfield")
    ids = [f"case_{i:03d}" for i in range(200)]
    same = [c for c in ids if describe_case("multisite", c, 0)["site"] == lowfield_site][:2]
    image = np.full((12, 12, 12), 100.0, np.float32)
    a, b = (apply_shift(image, "multisite", case_id=c, seed=0) for c in same)
    assert not np.array_equal(a, b)  # two volumes of one site: same blur and noise level, different noise draws
    assert np.array_equal(a, apply_shift(image, "multisite", case_id=same[0], seed=0))


def test_every_registered_domain_has_a_default_severity_and_unknown_names_get_a_suggestion() -> None:
    from assft.domains.plans import resolve_severity
    from assft.errors import UnknownNameError

    assert set(DOMAINS.names()) == set(DEFAULT_SEVERITY)
    with pytest.raises(UnknownNameError, match="Did you mean 'bias'"):
        resolve_severity("biass", None)
