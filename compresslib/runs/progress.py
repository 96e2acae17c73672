"""How far a run is and when it should end: ``epoch 5/200 · 12.3 s/epoch · ETA 21:35 (40 min)``.

One :class:`Progress` serves a training loop's per-epoch log line (as of now) and ``python -m compresslib status``,
which reads it from a run's state file (as of the file's last write). The rate is the mean seconds of the units given;
a caller passes those of the running session, so that a run resumed on another device is timed on that device.
Clock times are local, rounded to the minute. No torch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

__all__ = ["Progress", "format_duration", "format_clock", "local_iso"]


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` units (``unit``: epoch, or an ESNAC search's candidate) at ``seconds_per_unit`` (None:
    not measured yet), as of ``as_of`` (Unix time: when the last unit finished)."""

    done: int
    total: int
    seconds_per_unit: float | None
    unit: str
    as_of: float

    @classmethod
    def measured(cls, done: int, total: int, unit_seconds: Sequence[float], unit: str = "epoch",
                 as_of: float | None = None) -> Progress:
        """The progress whose rate is the mean of ``unit_seconds`` (empty: not measured), as of ``as_of`` (default:
        now)."""
        rate = sum(unit_seconds) / len(unit_seconds) if unit_seconds else None
        return cls(done, total, rate, unit, time.time() if as_of is None else as_of)

    @property
    def finish(self) -> float | None:
        """When the last unit should finish (Unix time), or None without a rate."""
        if self.seconds_per_unit is None:
            return None
        return self.as_of + max(self.total - self.done, 0) * self.seconds_per_unit

    def describe(self, now: float | None = None) -> str:
        """``epoch 5/200 · 12.3 s/epoch · ETA 21:35 (40 min)``; the ETA's duration counts from ``now``."""
        now = time.time() if now is None else now
        parts = [f"{self.unit} {self.done}/{self.total}"]
        if self.seconds_per_unit is not None:
            rate = self.seconds_per_unit
            parts.append(f"{rate:.1f} s/{self.unit}" if rate < 600 else f"{format_duration(rate)}/{self.unit}")
            if self.done < self.total:
                left = self.finish - now
                when = format_duration(left) if left >= 0 else f"overdue by {format_duration(-left)}"
                parts.append(f"ETA {format_clock(self.finish, now)} ({when})")
        return " · ".join(parts)

    def to_json(self, now: float) -> dict:
        finish = self.finish
        return {"unit": self.unit, "done": self.done, "total": self.total, "seconds_per_unit": self.seconds_per_unit,
                "as_of": local_iso(self.as_of), "eta": None if finish is None else local_iso(finish),
                "remaining_s": None if finish is None else max(finish - now, 0.0)}


def format_duration(seconds: float) -> str:
    """``45 s``, ``40 min``, ``3 h 05 min``, ``2 d 4 h``: two units at most, the last one rounded."""
    if seconds < 59.5:
        return f"{round(seconds)} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60:02d} min"
    hours = round(seconds / 3600)
    return f"{hours // 24} d {hours % 24} h"


def format_clock(moment: float, now: float) -> str:
    """Local time of ``moment`` to the minute: ``21:35`` on ``now``'s day, ``Tue 09:10`` within a week of it, else
    with its date."""
    when, today = datetime.fromtimestamp(round(moment / 60) * 60), datetime.fromtimestamp(now)
    days = abs((when.date() - today.date()).days)
    return when.strftime("%H:%M" if days == 0 else "%a %H:%M" if days < 7 else "%Y-%m-%d %H:%M")


def local_iso(moment: float) -> str:
    """``moment`` (Unix time) as local ISO 8601 with its offset, to the second."""
    return datetime.fromtimestamp(moment).astimezone().isoformat(timespec="seconds")
