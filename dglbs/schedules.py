"""Schedules of the restart probability ``alpha`` over training progress.

A schedule maps training progress ``p`` in ``[0, 1]`` (optimizer steps done / total
steps, reported by the training loop) to a value. Any callable ``float -> float``
works; the classes below add a useful ``repr`` and let samplers know when a
schedule is constant (it then needs no total step count).
"""
from __future__ import annotations

from collections.abc import Callable

from ._checks import check_probability

Schedule = Callable[[float], float]


class ConstantSchedule:
    """The same value at every step."""

    def __init__(self, value: float) -> None:
        self.value = check_probability("value", value)

    def __call__(self, progress: float) -> float:
        return self.value

    def __repr__(self) -> str:
        return f"ConstantSchedule({self.value})"


class LinearSchedule:
    """Linear from ``start`` at progress 0 to ``end`` at progress 1 (the paper decays
    alpha from 0.2 to 0.05 over training)."""

    def __init__(self, start: float, end: float) -> None:
        self.start = check_probability("start", start)
        self.end = check_probability("end", end)

    def __call__(self, progress: float) -> float:
        progress = min(max(progress, 0.0), 1.0)
        return self.start + (self.end - self.start) * progress

    def __repr__(self) -> str:
        return f"LinearSchedule(start={self.start}, end={self.end})"


def as_schedule(value: float | Schedule, name: str = "restart_prob") -> Schedule:
    """A float becomes a :class:`ConstantSchedule`; a callable is used as it is."""
    if callable(value):
        return value
    return ConstantSchedule(check_probability(name, value))


def evaluate(schedule: Schedule, progress: float, name: str = "restart_prob") -> float:
    """``schedule(progress)``, checked to be a probability."""
    value = schedule(progress)
    try:
        return check_probability(name, value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"schedule {schedule!r} at progress {progress:.4f}: {error}") from None
