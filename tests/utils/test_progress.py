"""Progress a person sees: plain timestamped step lines off a terminal, heartbeats on a fake clock, the watchdog,
silence in a `silenced()` block (library code takes no progress parameter), and the lines of a real (tiny) campaign
and of the demo's phases."""

from __future__ import annotations

import io
import re
import time
import warnings
from pathlib import Path

import pytest

from assft.utils.progress import (StepReporter, begin_step, current_reporter, deprecated_show_progress, progress,
                                  reporting, silenced)

STAMP = r"\[\s*(\d+\.\d) s\] "


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0  # not 0: elapsed times must be relative to the reporter's start

    def __call__(self) -> float:
        return self.now


def plain(clock: FakeClock, **options) -> tuple[StepReporter, io.StringIO]:
    stream = io.StringIO()
    return StepReporter(True, stream=stream, clock=clock, fancy=False, watchdog=False, **options), stream


def test_step_lines_carry_elapsed_time_and_duration() -> None:
    clock = FakeClock()
    reporter, stream = plain(clock)
    clock.now += 2.0
    with reporter.step("query 5 volumes") as step:
        clock.now += 2.5
        step["note"] = "5 selected"
    with pytest.raises(RuntimeError), reporter.step("fine-tune"):
        clock.now += 1.5
        raise RuntimeError("boom")
    assert stream.getvalue().splitlines() == [
        "[    2.0 s] query 5 volumes ...",
        "[    4.5 s] query 5 volumes ... done in 2.5 s (5 selected)",
        "[    4.5 s] fine-tune ...",
        "[    6.0 s] fine-tune ... failed after 1.5 s",
    ]


def test_begin_inside_a_step_ends_it_and_the_same_label_continues() -> None:
    clock = FakeClock()
    reporter, stream = plain(clock)
    with reporter.scope("assft seed0"), reporter.step("round 1/3: fine-tune") as step:
        clock.now += 10.0
        reporter.begin("round 1/3: evaluate")  # a later phase of the same block
        clock.now += 3.0
        reporter.begin("round 1/3: evaluate")  # already open: no new line
        step["note"] = "mean Dice 0.700"
    assert stream.getvalue().splitlines() == [
        "[    0.0 s] assft seed0 round 1/3: fine-tune ...",
        "[   10.0 s] assft seed0 round 1/3: fine-tune ... done in 10.0 s",
        "[   10.0 s] assft seed0 round 1/3: evaluate ...",
        "[   13.0 s] assft seed0 round 1/3: evaluate ... done in 3.0 s (mean Dice 0.700)",
    ]


def test_heartbeat_after_interval_of_silence_with_fake_clock() -> None:
    clock = FakeClock()
    with reporting(True, stream=io.StringIO(), clock=clock, fancy=False, watchdog=False, interval=25) as reporter:
        stream = reporter.stream
        reporter.begin("scoring")
        seen = []
        for item in progress(range(12), "Scoring pool"):  # 7 s per item
            seen.append(item)
            clock.now += 7.0
        reporter.end()
    assert seen == list(range(12))
    # Quiet since t=0: 4 items done at t=28 (>= 25 s) -> a line; quiet since 28: 8 done at t=56; then 12/12 at t=84.
    assert stream.getvalue().splitlines() == [
        "[    0.0 s] scoring ...",
        "[   28.0 s]   Scoring pool 4/12",
        "[   56.0 s]   Scoring pool 8/12",
        "[   84.0 s]   Scoring pool 12/12",
        "[   84.0 s] scoring ... done in 84.0 s",
    ]


def test_watchdog_check_quotes_the_open_step_and_loop_position() -> None:
    clock = FakeClock()
    reporter, stream = plain(clock, interval=25)
    assert not reporter.check_idle()  # no open step: nothing to say
    reporter.begin("training")
    beat = reporter.heartbeat("Training steps", 40)
    beat.tick(3)
    clock.now += 24.9
    assert not reporter.check_idle()
    clock.now += 0.1
    assert reporter.check_idle()
    assert not reporter.check_idle()  # the line just printed resets the silence
    beat.close()
    clock.now += 25.0
    assert reporter.check_idle()
    assert stream.getvalue().splitlines()[1:] == [
        "[   25.0 s]   still on training (25 s so far, at Training steps 3/40)",
        "[   50.0 s]   still on training (50 s so far)",
    ]


def test_watchdog_thread_prints_during_a_silent_step_and_stops_on_close() -> None:
    stream = io.StringIO()
    reporter = StepReporter(True, stream=stream, fancy=False, interval=0.05)
    with reporter:
        reporter.begin("a step with no loop")
        deadline = time.monotonic() + 10
        while "still on a step with no loop" not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
    assert "still on a step with no loop" in stream.getvalue()
    assert reporter._thread is None
    settled = stream.getvalue()
    time.sleep(0.2)
    assert stream.getvalue() == settled  # closed: no more lines


def test_show_progress_false_silences_nested_loops(capsys: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock()
    with reporting(False, clock=clock) as reporter:
        assert current_reporter() is reporter
        with reporter.step("hidden"), reporting() as inner:  # nested code reuses the silent reporter
            assert inner is reporter
            for _ in progress(range(3), "Loop"):  # enabled=None follows the silent reporter
                clock.now += 100.0
        reporter.line("hidden too")
    assert current_reporter() is None
    assert capsys.readouterr().err == ""


def _nested_work(clock: FakeClock) -> list[int]:
    """Library-shaped code: a step on whatever reporter is active, a loop in a loop, a later phase, a watchdog check."""
    seen = []
    with reporting() as report, report.step("outer step"):
        for i in progress(range(2), "Outer"):
            clock.now += 100.0
            for j in progress(range(2), "Inner"):
                clock.now += 100.0
                seen.append(10 * i + j)
            begin_step(f"phase {i}")
            report.check_idle()
    return seen


def test_a_silenced_block_prints_nothing_from_nested_loops(capsys: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock()
    # around it, a reporter that speaks at every chance: a heartbeat after 1 s of silence, and the clock jumps 100 s
    with reporting(True, clock=clock, fancy=False, watchdog=False, interval=1.0):
        with silenced():
            assert _nested_work(clock) == [0, 1, 10, 11]  # the work itself is unchanged
        assert capsys.readouterr().err == ""
        assert _nested_work(clock) == [0, 1, 10, 11]  # the same code outside the block does print
    err = capsys.readouterr().err
    assert "outer step ..." in err and "  Inner 0/2" in err and "phase 1 ..." in err
    assert current_reporter() is None


def test_the_old_keyword_warns_only_when_passed() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with deprecated_show_progress(None, "run_ssft"):  # the default: no block, no warning
            assert current_reporter() is None
    with pytest.warns(DeprecationWarning, match=r"run_ssft\(show_progress=\.\.\.\) is deprecated"), \
            deprecated_show_progress(False, "run_ssft"):
        assert not current_reporter().enabled  # False still silences, as it did


def test_loop_without_reporter_still_yields_everything() -> None:
    assert list(progress(iter("abc"), "Loop")) == ["a", "b", "c"]
    assert list(progress([1, 2], "Loop", enabled=False)) == [1, 2]


# -- a real campaign ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten 16^3 phantoms (6 pool, 4 test), a 3-step source model, a 2-round random campaign (1 volume a round)."""
    from assft.campaign.config import CampaignConfig
    from assft.campaign.campaign import init_campaign
    from assft.config import ModelConfig, TrainConfig
    from assft.data import load_dataset, make_split
    from assft.data.synthetic import make_phantom_dataset
    from assft.pretrain.supervised import train_supervised

    root = tmp_path_factory.mktemp("progress")
    data = make_phantom_dataset(root / "data", 10, shape=(16, 16, 16), seed=0)
    spec = load_dataset(data)
    split = make_split(spec.case_ids, {"pool": 6, "test": 4}, 0)
    net = ModelConfig(out_channels=5, params={"channels": (4, 8, 16), "strides": (2, 2)})
    model = train_supervised(spec.subset(split["pool"][:2]), root / "src", model_config=net,
                             train_config=TrainConfig(steps=3, batch_size=2, patch_size=(16, 16, 16))).best
    config = CampaignConfig.model_validate({
        "model": str(model), "pool": str(data), "pool_ids": split["pool"], "test": str(data), "test_ids": split["test"],
        "budget": "2", "rounds": 2, "strategy": "random", "seed": 0, "oracle": "ground_truth",
        "finetune": {"train": {"steps": 2, "batch_size": 1, "patch_size": [16, 16, 16]}, "ssft_steps": 2},
        "inference": {"roi_size": [16, 16, 16], "channels_last": False}})
    return init_campaign(root / "campaign", config)


def test_campaign_prints_one_plain_line_per_step_off_a_terminal(tiny_campaign: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from assft.campaign.simulate import run_campaign

    ledger = run_campaign(tiny_campaign)  # default show_progress; stderr is captured, so not a terminal
    err = capsys.readouterr().err.splitlines()
    assert all(re.match(STAMP, line) for line in err), err
    dice = [f"{r.metrics['mean_dice']:.3f}" for r in ledger.records()]
    expected = ["random seed0 start model on the test set ..."]
    for index in (1, 2):
        labeled = "1 labeled volume" if index == 1 else "2 labeled volumes"
        expected += [f"random seed0 round {index}/2: query 1 volume ...",
                     f"random seed0 round {index}/2: query 1 volume ... done in S (1 selected)",
                     f"random seed0 round {index}/2: fine-tune on {labeled} ...",
                     f"random seed0 round {index}/2: fine-tune on {labeled} ... done in S",
                     f"random seed0 round {index}/2: evaluate on the test set ...",
                     f"random seed0 round {index}/2: evaluate on the test set ... done in S (mean Dice "
                     f"{dice[index - 1]})"]
    expected.insert(1, "random seed0 start model on the test set ... done in S")
    got = [re.sub(r"done in \d+\.\d s", "done in S", re.sub(STAMP, "", line)) for line in err]
    assert got == expected
    stamps = [float(re.match(STAMP, line).group(1)) for line in err]
    assert stamps == sorted(stamps)

    with silenced():
        assert run_campaign(tiny_campaign) is not None  # finished: nothing left to do, nothing said
    assert capsys.readouterr().err == ""
    with pytest.warns(DeprecationWarning, match=r"run_campaign\(show_progress=\.\.\.\) is deprecated"):
        assert run_campaign(tiny_campaign, show_progress=False) is not None  # the old keyword, for one release
    assert capsys.readouterr().err == ""


# -- the demo's phases -------------------------------------------------------------------------------------------


def test_demo_announces_every_phase_off_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The demo's wiring, with the heavy work replaced by stand-ins (the real steps are timed in README)."""
    import assft.demo as demo
    import assft.campaign.simulate as simulate
    import assft.pretrain.supervised as supervised
    import assft.reporting as reporting_module

    calls: list[str] = []

    class Report:
        html, markdown = tmp_path / "report.html", tmp_path / "report.md"

    def fake_setup(out: Path, seed: int):
        calls.append("setup")
        return out / "source", out / "target", (32, 32, 32), {"pool": ["a"], "test": ["b"]}

    def fake_train(*args, **kwargs):
        calls.append("train")
        current_reporter().begin("2/5 training the source model (MONAI UNet, 7 steps)")  # same label: continues

    def fake_simulation(config, on_campaign=None, **kwargs):
        calls.append("simulate")
        with reporting() as inner, inner.scope("assft seed0"), inner.step("round 1/3: query 5 volumes"):
            pass  # what run_campaign does, on the demo's reporter
        on_campaign(Path(config.out) / "identity" / "assft" / "seed0")

    monkeypatch.setattr(demo, "_phantom_setup", fake_setup)
    monkeypatch.setattr(demo, "save_split", lambda *a, **k: None)
    monkeypatch.setattr(demo, "load_dataset", lambda path: path)
    monkeypatch.setattr(supervised, "train_supervised", fake_train)
    monkeypatch.setattr(simulate, "compute_bounds", lambda config, domain: calls.append(f"bounds {domain}"))
    monkeypatch.setattr(demo, "run_simulation", fake_simulation)
    monkeypatch.setattr(reporting_module, "write_report", lambda runs, out: calls.append("report") or Report())

    headlines: list[str] = []
    summary = demo.run_demo(tmp_path, source_steps=7, log=headlines.append)
    assert calls == ["setup", "train", "bounds identity", "simulate", "report"]
    lines = capsys.readouterr().err.splitlines()
    assert all(re.match(STAMP, line) for line in lines), lines
    err = [re.sub(r"done in \d+\.\d s", "done in S", re.sub(STAMP, "", line)) for line in lines]
    phantoms, source, bounds, campaigns, finished, report = headlines
    assert err == [
        f"{phantoms} ...", f"{phantoms} ... done in S",
        f"{source} ...", f"{source} ... done in S",  # the stand-in's begin() of the same label continued it
        f"{bounds} ...", f"{bounds} ... done in S",
        campaigns,  # announced, not a step: the campaigns' rounds are the steps
        "assft seed0 round 1/3: query 5 volumes ...", "assft seed0 round 1/3: query 5 volumes ... done in S",
        finished,
        f"{report} ...", f"{report} ... done in S",
    ]
    assert [phantoms[:4], source, campaigns[:4], finished] == [
        "1/5 ", "2/5 training the source model (MONAI UNet, 7 steps)", "4/5 ", "finished runs/identity/assft/seed0"]
    assert summary["report"] == str(Report.html)

    with silenced():
        demo.run_demo(tmp_path, source_steps=7)
    assert capsys.readouterr().err == ""
