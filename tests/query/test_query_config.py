"""QueryConfig's sections: the flat keys written before them still read (one notice), Field constraints, conflicts.

tests/query/fixtures/legacy_campaign is a campaign folder exactly as `assft campaign init` wrote it while the query options
were flat (only its two paths replaced); today's code must read it as the same campaign.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import assft.query.config as query_config
from assft.campaign.config import CampaignConfig, load_campaign_config
from assft.campaign.experiment import deep_merge
from assft.config import parse_config
from assft.errors import ConfigError, ConfigNotice
from assft.query.config import LEGACY_KEYS, QueryConfig

LEGACY_CAMPAIGN = Path(__file__).parent / "fixtures" / "legacy_campaign"
PRESETS = Path(__file__).resolve().parents[2] / "benchmarks" / "configs"
ASSFT = shutil.which("assft")
ENTRY = [ASSFT] if ASSFT else [sys.executable, "-c", "from assft.cli.app import main; main()"]

# Every flat key, its nested place, and a valid value other than the default (known answers, written out rather
# than derived from LEGACY_KEYS so that a wrong entry there fails here).
FLAT_TO_NESTED = [
    ("asd_threshold", "asd", "threshold", "fixed"),
    ("asd_fixed_threshold", "asd", "fixed_threshold", 0.3),
    ("asd_threshold_clip", "asd", "threshold_clip", (0.2, 0.8)),
    ("asd_reduce", "asd", "reduce", "mean"),
    ("asd_empty_top_fraction", "asd", "empty_top_fraction", 0.05),
    ("otsu_bins", "asd", "otsu_bins", 64),
    ("kd_source", "kd", "source", "intensity"),
    ("kd_eps", "kd", "eps", 1e-4),
    ("dkd_combine", "kd", "combine", "sum"),
    ("kd_weighting", "kd", "weighting", "typicality"),
    ("kd_clip_quantile", "kd", "clip_quantile", 0.9),
    ("kd_guard", "kd", "guard", 0.75),
    ("power_beta", "power", "beta", 3.0),
    ("power_beta_start", "power", "beta_start", 2.0),
    ("power_beta_end", "power", "beta_end", 50.0),
    ("power_eps", "power", "eps", 1e-3),
    ("clasp_reduce", "clasp", "reduce", "topk_mean"),
    ("clasp_box_fraction", "clasp", "box_fraction", 1.0),
    ("clasp_box_size", "clasp", "box_size", (8, 8, 4)),
    ("clasp_top_fraction", "clasp", "top_fraction", 0.02),
    ("clasp_class_fraction", "clasp", "class_fraction", 0.5),
]

# The legacy campaign's query block spelled nested (its values: the defaults `campaign init` wrote).
NESTED_QUERY = """
alpha: 0.5
cold_start: auto
embedding_source: current
mc_samples: 10
typiclust_neighbors: 20
sampling: auto
alpha_high_spread: 1.0
alpha_spread_threshold: 1.1
cold_start_method: dkd
asd: {threshold: otsu, fixed_threshold: 0.5, threshold_clip: [0.1, 0.9], reduce: class_balanced,
      empty_top_fraction: 0.01, otsu_bins: 256}
kd: {source: auto, eps: 1.0e-05, combine: product, weighting: none, clip_quantile: null, guard: null}
power: {beta: schedule, beta_start: 1.0, beta_end: 100.0, eps: 1.0e-06}
clasp: {reduce: box_max, box_fraction: 0.5, box_size: null, top_fraction: 0.01, class_fraction: 0.66}
"""


def quiet(raw: dict) -> QueryConfig:
    """QueryConfig from `raw`, its legacy-key notice silenced (the tests below check the notice on its own)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigNotice)
        return QueryConfig.model_validate(raw)


def run_assft(*args: str) -> subprocess.CompletedProcess:
    """The console script with one thread and a wide terminal (one message, one line)."""
    env = {**os.environ, "ASSFT_THREADS": "1", "COLUMNS": "400", "NO_COLOR": "1"}
    return subprocess.run([*ENTRY, *args], capture_output=True, text=True, env=env, timeout=120)


def digest(folder: Path) -> str:
    """One hash of every file's path and bytes under `folder`."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def test_the_committed_legacy_campaign_holds_flat_keys() -> None:
    query = yaml.safe_load((LEGACY_CAMPAIGN / "campaign.yaml").read_text())["query"]
    assert set(LEGACY_KEYS) <= set(query) and not {"asd", "kd", "power", "clasp"} & set(query)


def test_a_legacy_campaign_loads_as_its_nested_spelling(tmp_path: Path) -> None:
    camp = Path(shutil.copytree(LEGACY_CAMPAIGN, tmp_path / "camp"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigNotice)
        legacy = load_campaign_config(camp)
    raw = yaml.safe_load((camp / "campaign.yaml").read_text())
    raw["query"] = yaml.safe_load(NESTED_QUERY)
    nested = parse_config(raw, CampaignConfig)
    assert legacy == nested and legacy.query == QueryConfig()
    assert legacy.query.kd.source == "auto" and legacy.query.asd.threshold_clip == (0.1, 0.9)
    assert legacy.query_for_round(1) == nested.query_for_round(1)


def test_a_legacy_campaign_prints_one_note_through_the_console_script(tmp_path: Path) -> None:
    camp = Path(shutil.copytree(LEGACY_CAMPAIGN, tmp_path / "camp"))
    before = digest(camp)
    done = run_assft("campaign", "status", str(camp))
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(notes) == 1 and notes[0].startswith("note: query keys asd_threshold, asd_fixed_threshold,")
    assert notes[0].endswith("clasp.top_fraction, clasp.class_fraction (read as such)")
    assert "Warning" not in done.stderr and "next: assft campaign next" in done.stdout
    assert digest(camp) == before  # reading an old campaign leaves it as it was


def test_every_legacy_key_is_covered() -> None:
    assert {flat: (section, name) for flat, section, name, _ in FLAT_TO_NESTED} == LEGACY_KEYS


@pytest.mark.parametrize(("flat", "section", "name", "value"), FLAT_TO_NESTED, ids=[f[0] for f in FLAT_TO_NESTED])
def test_a_flat_key_reads_as_its_nested_field(flat: str, section: str, name: str, value: object) -> None:
    config = quiet({flat: value})
    assert getattr(getattr(config, section), name) == value
    assert getattr(getattr(config, section), name) != getattr(getattr(QueryConfig(), section), name)
    assert config == QueryConfig.model_validate({section: {name: value}})
    assert flat not in config.model_dump() and name in config.model_dump()[section]


def test_the_notice_names_the_keys_once_per_process_and_key_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(query_config, "_NOTICED", set())
    with pytest.warns(ConfigNotice) as caught:
        QueryConfig.model_validate({"kd_guard": 0.5, "asd_threshold": "fixed"})
    assert [str(w.message) for w in caught] == [
        "query keys asd_threshold, kd_guard are the old flat names; write asd.threshold, kd.guard (read as such)"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigNotice)
        QueryConfig.model_validate({"asd_threshold": "none", "kd_guard": 2.0})  # the same key set: no second notice
        QueryConfig.model_validate({"kd": {"guard": 2.0}})  # nested: never a notice
    with pytest.warns(ConfigNotice, match=r"^query key power_eps is the old flat name; write power.eps "):
        QueryConfig(power_eps=1e-3)  # Python keywords are the raw dict too


def test_flat_and_nested_must_agree() -> None:
    assert quiet({"kd_guard": 0.75, "kd": {"guard": 0.75, "source": "pool"}}).kd.guard == 0.75
    assert quiet({"asd_threshold_clip": [0.2, 0.8], "asd": {"threshold_clip": (0.2, 0.8)}}).asd.threshold_clip == \
        (0.2, 0.8)  # a YAML list and a tuple are one value
    with pytest.raises(ConfigError, match=r"query: kd_guard and kd\.guard are one option, given two values "
                                          r"\(0\.5 and 0\.75\): give it once, as kd\.guard"):
        parse_config({"model": "m.pt", "pool": "p", "query": {"kd_guard": 0.5, "kd": {"guard": 0.75}}},
                     CampaignConfig)


def test_a_preset_flat_key_meets_an_arm_nested_key_in_one_dict() -> None:
    # simulate merges a preset's query with an arm's as raw dicts, before either is read
    preset, arm = {"kd_source": "pool", "alpha": 0.5}, {"kd": {"source": "pool", "guard": 0.75}}
    assert quiet(deep_merge(preset, arm)) == QueryConfig(kd={"source": "pool", "guard": 0.75})
    with pytest.raises(ValidationError, match="kd_source and kd.source are one option"):
        quiet(deep_merge(preset, {"kd": {"source": "intensity"}}))


# A valid value for every legacy key (hypothesis draws one per key).
VALUES = {
    "asd_threshold": st.sampled_from(["otsu", "fixed", "none"]),
    "asd_fixed_threshold": st.floats(0.01, 1.0),
    "asd_threshold_clip": st.tuples(st.floats(0.0, 0.5), st.floats(0.5, 1.0)),
    "asd_reduce": st.sampled_from(["class_balanced", "mean"]),
    "asd_empty_top_fraction": st.floats(0.001, 1.0),
    "otsu_bins": st.integers(1, 512),
    "kd_source": st.sampled_from(["auto", "running_stats", "fingerprint", "intensity", "pool", "consistency"]),
    "kd_eps": st.floats(1e-9, 1.0),
    "dkd_combine": st.sampled_from(["product", "sum"]),
    "kd_weighting": st.sampled_from(["none", "typicality"]),
    "kd_clip_quantile": st.none() | st.floats(0.01, 1.0),
    "kd_guard": st.none() | st.floats(0.01, 10.0),
    "power_beta": st.just("schedule") | st.floats(0.1, 100.0),
    "power_beta_start": st.floats(0.1, 10.0),
    "power_beta_end": st.floats(10.0, 1000.0),
    "power_eps": st.floats(1e-9, 1e-2),
    "clasp_reduce": st.sampled_from(["box_max", "topk_mean"]),
    "clasp_box_fraction": st.floats(0.01, 1.0),
    "clasp_box_size": st.none() | st.tuples(st.integers(1, 64), st.integers(1, 64), st.integers(1, 64)),
    "clasp_top_fraction": st.floats(0.001, 1.0),
    "clasp_class_fraction": st.floats(0.0, 1.0),
}


@settings(max_examples=60, deadline=None)
@given(st.fixed_dictionaries({}, optional={key: st.tuples(values, st.sampled_from(["flat", "nested", "both"]))
                                           for key, values in VALUES.items()}))
def test_any_mix_of_spellings_gives_the_all_nested_config(drawn: dict) -> None:
    mixed: dict = {}
    nested: dict = {}
    for key, (value, spelling) in drawn.items():
        section, name = LEGACY_KEYS[key]
        nested.setdefault(section, {})[name] = value
        if spelling in ("flat", "both"):
            mixed[key] = list(value) if isinstance(value, tuple) else value  # as YAML gives it
        if spelling in ("nested", "both"):
            mixed.setdefault(section, {})[name] = value
    assert quiet(mixed) == QueryConfig.model_validate(nested)


BAD = {  # an option out of its Field's range (or given twice) -> the words of the one error line
    "kd.guard": ({"kd": {"guard": -1.0}}, "query.kd.guard: Input should be greater than 0"),
    "asd.threshold_clip": ({"asd": {"threshold_clip": [0.9, 0.1]}},
                           "query.asd: Value error, asd.threshold_clip must satisfy low <= high"),
    "power.beta": ({"power": {"beta": 0}},
                   "query.power.beta: Value error, power.beta must be a finite number > 0 or 'schedule'"),
    "clasp.box_fraction": ({"clasp": {"box_fraction": 1.5}},
                           "query.clasp.box_fraction: Input should be less than or equal to 1"),
    "alpha_spread_threshold": ({"alpha_spread_threshold": float("inf")},
                               "query.alpha_spread_threshold: Input should be a finite number"),
    "mc_samples": ({"mc_samples": 1}, "query.mc_samples: Input should be greater than or equal to 2"),
    "conflict": ({"kd_guard": 0.5, "kd": {"guard": 0.75}},
                 "query: kd_guard and kd.guard are one option, given two values (0.5 and 0.75)"),
}


def bad_campaign(folder: Path, bad: dict) -> Path:
    """A copy of the legacy campaign whose query is the nested spelling with `bad` merged in."""
    camp = Path(shutil.copytree(LEGACY_CAMPAIGN, folder))
    raw = yaml.safe_load((camp / "campaign.yaml").read_text())
    raw["query"] = deep_merge(yaml.safe_load(NESTED_QUERY), bad)
    (camp / "campaign.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return camp


@pytest.mark.parametrize("case", list(BAD))
def test_an_out_of_range_option_is_a_config_error_naming_it(tmp_path: Path, case: str) -> None:
    bad, needle = BAD[case]
    with pytest.raises(ConfigError) as caught:
        load_campaign_config(bad_campaign(tmp_path / "camp", bad))
    assert needle in str(caught.value) and "campaign.yaml" in str(caught.value)


def test_out_of_range_options_through_the_console_script_are_one_line_and_exit_2(tmp_path: Path) -> None:
    cases = ("kd.guard", "conflict")  # the others above in-process: each interpreter start costs seconds
    camps = {case: bad_campaign(tmp_path / case, BAD[case][0]) for case in cases}
    before = {case: digest(camp) for case, camp in camps.items()}
    with ThreadPoolExecutor(len(cases)) as pool:
        done = dict(zip(cases, pool.map(lambda c: run_assft("campaign", "status", str(camps[c])), cases)))
    for case in cases:
        lines = [line for line in done[case].stderr.splitlines() if line.strip()]
        assert done[case].returncode == 2 and len(lines) == 1, done[case].stderr
        assert lines[0].startswith("error: ") and "campaign.yaml" in lines[0] and BAD[case][1] in lines[0], lines[0]
        assert "Fix:" in lines[0] and digest(camps[case]) == before[case]


@pytest.mark.parametrize("preset", sorted(PRESETS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_benchmark_preset_parses_without_legacy_keys(preset: Path) -> None:
    raw = yaml.safe_load(preset.read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigNotice)
        for arm in [{}, *(raw.get("arms") or {}).values()]:
            QueryConfig.model_validate(deep_merge(raw.get("query") or {}, arm.get("query") or {}))
