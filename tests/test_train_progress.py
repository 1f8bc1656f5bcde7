"""Phase progress with the time left: the ETA helper by hand, the loop's phases, the CLI's lines."""

import io

import pytest

from tada_core import TADAConfig
from tada_core.cli.train import ProgressCallback
from tada_core.training.loop import Callback, train
from tada_core.training.progress import PhaseClock, PhaseProgress, format_duration, rate, seconds_left
from tests.helpers import bars_run_data


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rate_and_time_left_by_hand():
    assert rate(0, 10.0) is None and rate(5, 0.0) is None
    assert rate(30, 10.0) == 3.0
    assert seconds_left(30, 120, 10.0) == 30.0  # 3 a second, 90 to go
    assert seconds_left(0, 120, 10.0) is None  # no rate yet
    assert seconds_left(130, 120, 10.0) == 0.0
    assert seconds_left(110, 300, 11.0, counted=11) == 190.0  # resumed at 100: 11 steps in 11 s
    assert [format_duration(s) for s in (0, 0.4, 42, 59.6, 754.2, 3725)] == [
        "0:00",
        "0:00",
        "0:42",
        "1:00",
        "12:34",
        "1:02:05",
    ]


def test_phase_clock_times_each_phase_and_pauses_the_one_below():
    clock = FakeClock()
    phases = PhaseClock(clock)
    first = phases.start("encode", 5000)
    assert first.left_s is None and first.text() == "encode 0/5,000 images · estimating the time left"
    clock.now = 10.0
    encode = phases.update("encode", 1234)
    assert encode.left_s == pytest.approx((5000 - 1234) / (1234 / 10.0))  # 30.52 s
    assert encode.text() == "encode 1,234/5,000 images · 0:31 left"
    clock.now = 12.0
    assert phases.end("encode").text() == "encode 5,000/5,000 images · done in 0:12"

    clock.now = 20.0
    phases.start("steps", 300, done=100)  # resumed at step 100: those are not this session's work
    clock.now = 30.0
    steps = phases.update("steps", 110)
    assert steps.left_s == pytest.approx(190.0) and steps.text() == "steps 110/300 · 3:10 left"
    calibrate = phases.start("calibrate", 400)  # an evaluation pauses the steps' clock
    clock.now = 35.0
    assert phases.update("calibrate", 100).left_s == pytest.approx(15.0)  # 20 images a second
    clock.now = 50.0
    phases.update("calibrate", 400)  # 400 images in 20 s
    assert phases.end("calibrate").elapsed_s == pytest.approx(20.0)
    clock.now = 52.0
    steps = phases.update("steps", 112)  # 12 steps in 10 + 2 active seconds
    assert steps.elapsed_s == pytest.approx(12.0) and steps.left_s == pytest.approx(188.0)
    calibrate = phases.start("calibrate", 400)  # the next evaluation keeps the rate of the first
    assert calibrate.done == 0 and calibrate.left_s == pytest.approx(400 / 20.0)
    clock.now = 54.0
    calibrate = phases.update("calibrate", 40)  # 440 images in 22 s: 20 a second
    assert calibrate.left_s == pytest.approx(360 / 20.0)
    assert PhaseProgress("localiser", 3, 9, "", 1.0, 2.0).text() == "localiser 3/9 · 0:02 left"


def test_units_found_on_disk_count_for_no_rate():
    clock = FakeClock()
    phases = PhaseClock(clock)
    phases.start("encode", 100)
    assert phases.update("encode", 60, timed=False).left_s is None  # a stored domain, reused at once
    clock.now = 1.0
    assert phases.update("encode", 70).left_s == pytest.approx(30 / 10.0)  # 10 encoded in 1 s


class Phases(Callback):
    def __init__(self) -> None:
        self.seen: list[PhaseProgress] = []
        self.caches: list[tuple[int, int]] = []

    def on_phase(self, progress):
        self.seen.append(progress)

    def on_cache(self, done, total):
        self.caches.append((done, total))


def _frozen_config(tmp_path, **train) -> TADAConfig:
    config = TADAConfig(backbone="lenet", variant="dann", num_classes=2)
    config.train.iters, config.train.batch_size, config.train.eval_every = 4, 8, 2
    config.train.out, config.train.frozen_backbone = str(tmp_path / "run"), True
    for key, value in train.items():
        setattr(config.train, key, value)
    return config


def test_every_phase_reports_progress_and_ends_finished(tmp_path):
    recorder = Phases()
    train(_frozen_config(tmp_path), data=bars_run_data(32), callbacks=[recorder])
    order = []
    for p in recorder.seen:
        if not order or order[-1] != p.phase:
            order.append(p.phase)
    assert order == ["encode", "steps", "calibrate", "steps", "calibrate", "steps", "localiser"]
    ends = [p for p in recorder.seen if p.finished]
    assert [p.phase for p in ends] == ["encode", "calibrate", "calibrate", "steps", "localiser", "localiser"]
    assert [(p.unit, p.total) for p in ends[-2:]] == [("images", 64), ("epochs", 45)]  # 32 + 32, 3 seeds × 15
    assert all(p.done == p.total and p.left_s == 0.0 for p in ends)
    assert ends[0].total == recorder.caches[-1][1]  # encode counts what on_cache counts
    steps = [p for p in recorder.seen if p.phase == "steps" and not p.finished]
    assert [p.done for p in steps] == [0, 1, 2, 3, 4] and all(p.total == 4 for p in steps)
    assert all(p.left_s is not None for p in steps[1:])
    calibrate = [p for p in recorder.seen if p.phase == "calibrate"]
    assert all(0 <= p.done <= p.total for p in calibrate)


def test_resuming_a_finished_run_neither_encodes_nor_fits_again(tmp_path):
    train(_frozen_config(tmp_path, localiser=False), data=bars_run_data(32))
    fit = Phases()  # interrupted before its localiser (here: it had none): resume fits only that
    train(_frozen_config(tmp_path), data=bars_run_data(32), resume=True, callbacks=[fit])
    assert not fit.caches and {p.phase for p in fit.seen} == {"steps", "localiser"}
    again = Phases()  # everything is in last.safetensors: nothing to do
    result = train(_frozen_config(tmp_path), data=bars_run_data(32), resume=True, callbacks=[again])
    assert not again.caches and {p.phase for p in again.seen} == {"steps"} and result.steps == 4


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cli_progress_lines_on_a_terminal_in_a_log_and_quiet():
    def feed(bar: ProgressCallback) -> None:
        bar.on_phase(PhaseProgress("encode", 0, 5000, "images", 0.0, None))
        bar.on_phase(PhaseProgress("encode", 1234, 5000, "images", 10.0, 42.0))
        bar.on_phase(PhaseProgress("encode", 5000, 5000, "images", 40.0, 0.0, finished=True))
        bar.on_step(None, {"total": 1.2041, "classification": 0.4123})
        bar.on_phase(PhaseProgress("steps", 1, 300, "steps", 0.5, 150.0))

    tty = Tty()
    feed(ProgressCallback(stream=tty, redraw_every=0.0))
    assert tty.getvalue().split("\r\x1b[K")[1:] == [
        "encode 0/5,000 images · estimating the time left",
        "encode 1,234/5,000 images · 0:42 left",  # terminal: redrawn in place
        "encode 5,000/5,000 images · done in 0:40\n",
        "steps 1/300 · 2:30 left · loss 1.204 (cls 0.412)",
    ]
    log = io.StringIO()
    feed(ProgressCallback(stream=log, log_every=0.0))
    assert log.getvalue().splitlines() == [
        "encode 1,234/5,000 images · 0:42 left",  # a log: the first line after log_every
        "encode 5,000/5,000 images · done in 0:40",
    ]
    quiet = io.StringIO()
    feed(ProgressCallback(enabled=False, stream=quiet))
    assert quiet.getvalue() == ""


def test_the_app_job_shows_the_phase_with_its_time_left(tmp_path):
    from app.serving.job_worker import Reporter
    from app.serving.jobs import Job
    from app.tabs.train import _progress_html

    class Pipe:
        def __init__(self) -> None:
            self.sent: list[tuple] = []

        def send(self, event) -> None:
            self.sent.append(event)

    pipe = Pipe()
    reporter = Reporter(pipe, TADAConfig(), probes=[])
    reporter.on_phase(PhaseProgress("calibrate", 0, 3400, "images", 0.0, None))
    reporter.on_phase(PhaseProgress("calibrate", 1200, 3400, "images", 3.0, 5.5))  # within 0.5 s: not sent
    reporter.on_phase(PhaseProgress("calibrate", 3400, 3400, "images", 8.0, 0.0, finished=True))
    updates = [payload["phase"] for kind, payload in pipe.sent if kind == "update"]
    assert [(u["done"], u["finished"]) for u in updates] == [(0, False), (3400, True)]
    assert updates[-1]["text"] == "calibrate 3,400/3,400 images · done in 0:08"

    job = Job(id="job-1", config=TADAConfig(), out_dir=tmp_path, status="running", step=100)
    job.phase = PhaseProgress("calibrate", 1200, 3400, "images", 3.0, 5.5).to_dict()
    shown = _progress_html(job)
    assert "calibrate 1,200/3,400 images · 0:06 left (35%) · running" in shown and 'aria-valuenow="35"' in shown
    job.status = "finished"
    assert "100 / 2000 steps" in _progress_html(job)  # a finished job shows its steps, as before
