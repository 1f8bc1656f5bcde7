"""Progress of a training run's phases, with an estimate of the time each has left.

A run goes through phases, each counted in its own unit:

    encode     images   frozen backbone: every image (and calibration-ladder image) encoded once
    steps      steps    the optimisation steps
    calibrate  images   each evaluation: held-out source, target, the label-free calibration of the
                        accuracy estimate (at most; the ladder stops early when a rung is hard)
    localiser  images,  the shift localiser's fit after the last step: the images encoded at its
               epochs   tap, then its training epochs (two stretches, each with its own rate)

:class:`PhaseClock` times them and turns each report into a :class:`PhaseProgress` whose time left
is the work left at the rate so far:

    rate = units done (this session) / seconds the phase was active      left = (total − done) / rate

Phases nest: one started while another runs pauses it until it ends (an evaluation pauses the
steps' clock), so each phase's rate is its own work per second, and ``calibrate`` keeps its
rate from one evaluation to the next (the first evaluation already gives the later ones theirs).

    >>> seconds_left(done=30, total=120, elapsed=10.0)  # 3 units a second, 90 to go
    30.0
    >>> format_duration(754.2)
    '12:34'
    >>> PhaseProgress("encode", 1234, 5000, "images", 10.0, 42.0).text()
    'encode 1,234/5,000 images · 0:42 left'
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

UNITS = {"encode": "images", "steps": "steps", "calibrate": "images", "localiser": "images"}


def rate(done: float, elapsed: float) -> float | None:
    """Units per second: ``done`` units in ``elapsed`` seconds (None before either is positive)."""
    if done <= 0 or elapsed <= 0:
        return None
    return done / elapsed


def seconds_left(done: float, total: float, elapsed: float, counted: float | None = None) -> float | None:
    """Seconds until ``total`` at the rate of ``counted`` units (default ``done``) in ``elapsed``
    seconds; None while there is no rate yet."""
    speed = rate(done if counted is None else counted, elapsed)
    if speed is None:
        return None
    return max(0.0, total - done) / speed


def format_duration(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour), rounded to the second: 42 → '0:42', 3725 → '1:02:05'."""
    whole = max(0, int(seconds + 0.5))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass(frozen=True)
class PhaseProgress:
    """Where one phase stands.

    Attributes:
        phase: ``encode``, ``steps``, ``calibrate`` or ``localiser``.
        done, total: units done and planned (``calibrate``'s total is an upper bound).
        unit: what is counted (``images``, ``steps``; empty for mixed units).
        elapsed_s: seconds the phase has been active (this session).
        left_s: estimated seconds left (None until there is a rate; 0 when finished).
        finished: the phase has ended (this time).
    """

    phase: str
    done: int
    total: int
    unit: str
    elapsed_s: float
    left_s: float | None
    finished: bool = False

    def text(self) -> str:
        """``encode 1,234/5,000 images · 0:42 left``, ``steps 120/300 · 0:35 left`` (a unit that is
        the phase's name is not repeated), ``… · done in 1:05`` once finished."""
        unit = f" {self.unit}" if self.unit and self.unit != self.phase else ""
        if self.finished:
            when = f"done in {format_duration(self.elapsed_s)}"
        elif self.left_s is None:
            when = "estimating the time left"
        else:
            when = f"{format_duration(self.left_s)} left"
        return f"{self.phase} {self.done:,}/{self.total:,}{unit} · {when}"

    def to_dict(self) -> dict:
        """JSON-ready, with ``text``."""
        return {
            **asdict(self),
            "text": self.text(),
            "elapsed_s": round(self.elapsed_s, 1),
            "left_s": None if self.left_s is None else round(self.left_s, 1),
        }


@dataclass
class _State:
    unit: str
    total: int = 0
    done: int = 0
    counted: int = 0  # units done while timed, this session (for the rate)
    active: float = 0.0  # seconds active before the current stretch
    since: float | None = None  # start of the current stretch; None while paused or ended


class PhaseClock:
    """Times a run's phases; every call returns the phase's :class:`PhaseProgress`.

    ``clock``: the time source in seconds (tests pass a fake one).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._phases: dict[str, _State] = {}
        self._stack: list[str] = []  # running phases, innermost last; only the last is timed

    def _pause(self, state: _State, now: float) -> None:
        if state.since is not None:
            state.active += now - state.since
            state.since = None

    def start(
        self, phase: str, total: int, done: int = 0, unit: str | None = None, fresh: bool = False
    ) -> PhaseProgress:
        """Begin ``phase`` (again) at ``done`` of ``total``, pausing the one running; its rate so far
        is kept (``done`` itself is not counted as work of this session) unless ``fresh`` (work of
        another kind: the localiser's epochs after its images)."""
        now = self.clock()
        if self._stack and self._stack[-1] != phase:
            self._pause(self._phases[self._stack[-1]], now)
        default = UNITS.get(phase, "") if unit is None else unit
        if fresh:
            self._phases.pop(phase, None)
        state = self._phases.setdefault(phase, _State(default))
        state.total, state.done = int(total), int(done)
        if unit is not None:
            state.unit = unit
        if phase in self._stack:
            self._stack.remove(phase)
        self._stack.append(phase)
        if state.since is None:
            state.since = now
        return self._progress(phase, now)

    def update(self, phase: str, done: int, total: int | None = None, timed: bool = True) -> PhaseProgress:
        """``phase`` has reached ``done`` (started here when it was not running); ``timed=False``:
        the units since the last update took no work (maps found on disk), so they count for no rate."""
        if phase not in self._stack:
            self.start(phase, done if total is None else total)
        state = self._phases[phase]
        if total is not None:
            state.total = int(total)
        if timed:
            state.counted += max(0, int(done) - state.done)
        state.done = int(done)
        return self._progress(phase, self.clock())

    def end(self, phase: str, done: int | None = None) -> PhaseProgress:
        """``phase`` has ended (at ``done``, default its total); the phase it paused resumes. A jump
        to the total counts no work for the rate (a ladder that stopped early skipped those images)."""
        now = self.clock()
        state = self._phases.setdefault(phase, _State(UNITS.get(phase, "")))
        state.done = state.total if done is None else int(done)
        self._pause(state, now)
        if phase in self._stack:
            self._stack.remove(phase)
        if self._stack:
            below = self._phases[self._stack[-1]]
            if below.since is None:
                below.since = now
        return self._progress(phase, now, finished=True)

    def _progress(self, phase: str, now: float, finished: bool = False) -> PhaseProgress:
        state = self._phases[phase]
        elapsed = state.active + (now - state.since if state.since is not None else 0.0)
        left = 0.0 if finished else seconds_left(state.done, state.total, elapsed, counted=state.counted)
        return PhaseProgress(phase, state.done, state.total, state.unit, elapsed, left, finished)
