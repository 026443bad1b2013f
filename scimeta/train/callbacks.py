"""What watches a training phase: metrics, validation, checkpoints, progress.

The phase loop (:mod:`.loop`) samples a batch, calls :func:`~.step.meta_step`
and then hands a :class:`StepInfo` to each callback in order. A callback acts
on its own schedule (``every`` iterations and at the phase's last iteration)
and on a graceful stop (:meth:`Callback.on_stop`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tqdm.auto import tqdm

log = logging.getLogger(__name__)


@dataclass
class StepInfo:
    """State after a meta-step: ``iteration`` counts finished steps (1-based)."""

    phase: str
    iteration: int
    iterations: int
    loss: float
    t0: float = field(default_factory=time.perf_counter)

    @property
    def last(self) -> bool:
        return self.iteration == self.iterations

    def due(self, every: int) -> bool:
        """Whether a callback acting every ``every`` iterations acts now (and at the end)."""
        return self.iteration % every == 0 or self.last

    def row(self, metric: str, value: float) -> dict:
        """A metrics.csv row (phase, iteration, metric, value, seconds since t0)."""
        return {"phase": self.phase, "iteration": self.iteration, "metric": metric,
                "value": f"{value:.8g}", "seconds": f"{time.perf_counter() - self.t0:.3f}"}


class Callback:
    """Base class: override what you need."""

    def on_step(self, info: StepInfo) -> None:
        """After every meta-step."""

    def on_stop(self, info: StepInfo) -> None:
        """When a stop was requested (SIGTERM/SIGUSR1/SIGINT), before the phase returns."""

    def on_end(self, info: StepInfo) -> None:
        """After the phase's last iteration."""


RowSink = Callable[[list[dict]], None]


class LossLog(Callback):
    """Log the meta-loss every ``every`` iterations (logging and a metrics row)."""

    def __init__(self, every: int, sink: RowSink) -> None:
        self.every, self.sink = every, sink

    def on_step(self, info: StepInfo) -> None:
        if info.due(self.every):
            self.sink([info.row("train_loss", info.loss)])
            log.info("phase %s iteration %d/%d meta-loss %.4g", info.phase, info.iteration,
                     info.iterations, info.loss)


class Validation(Callback):
    """Every ``every`` iterations, ``evaluate(label) -> mse`` for each held-out label;
    ``observe(iteration, mean mse over labels)`` after each round, if given."""

    def __init__(self, every: int, labels: list[str], evaluate: Callable[[str], float],
                 sink: RowSink, observe: Callable[[int, float], None] | None = None) -> None:
        self.every, self.labels, self.evaluate, self.sink = every, labels, evaluate, sink
        self.observe = observe

    def on_step(self, info: StepInfo) -> None:
        if self.labels and info.due(self.every):
            mse = {label: self.evaluate(label) for label in self.labels}
            self.sink([info.row(f"val_mse/{label}", v) for label, v in mse.items()])
            if self.observe is not None:
                self.observe(info.iteration, sum(mse.values()) / len(mse))


class Checkpointer(Callback):
    """``save(iteration)`` every ``every`` iterations and on a graceful stop."""

    def __init__(self, every: int, save: Callable[[int], None]) -> None:
        self.every, self.save = every, save

    def on_step(self, info: StepInfo) -> None:
        if info.iteration % self.every == 0 and not info.last:
            self.save(info.iteration)

    def on_stop(self, info: StepInfo) -> None:
        self.save(info.iteration)


class Snapshots(Callback):
    """``save(iteration)`` every ``every`` iterations and at the end (none if every = 0)."""

    def __init__(self, every: int, save: Callable[[int], None]) -> None:
        self.every, self.save = every, save

    def on_step(self, info: StepInfo) -> None:
        if self.every > 0 and info.due(self.every):
            self.save(info.iteration)


class Progress(Callback):
    """A tqdm bar (off when ``show`` is False, e.g. output is not a terminal)."""

    def __init__(self, phase: str, total: int, initial: int, show: bool) -> None:
        self.bar = tqdm(total=total, initial=initial, disable=not show, desc=phase, unit="it")

    def on_step(self, info: StepInfo) -> None:
        self.bar.update(1)

    def on_stop(self, info: StepInfo) -> None:
        self.bar.close()

    def on_end(self, info: StepInfo) -> None:
        self.bar.close()
