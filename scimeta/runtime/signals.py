"""Graceful stop on SIGTERM/SIGUSR1 (SLURM pre-emption): set a flag, checkpoint, exit.

A command stopped this way exits with :data:`EXIT_REQUEUE` so that a job script can
tell "stopped, resumable" from "finished" (0) and from an error (1, 2):
``[ $rc -eq 75 ] && scontrol requeue $SLURM_JOB_ID``.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

STOP_SIGNALS = ("SIGTERM", "SIGUSR1", "SIGINT")

#: exit status of ``scimeta train`` / ``scimeta suite`` stopped by a signal after
#: writing a checkpoint: resumable, requeue the job (75 = EX_TEMPFAIL, sysexits.h)
EXIT_REQUEUE = 75


class StopFlag:
    """Installs handlers that set :attr:`requested`; the loop checks it at step ends.

    Use as a context manager; previous handlers are restored on exit. Only the main
    thread can install handlers; elsewhere the flag is inert.
    """

    def __init__(self, signals: tuple[str, ...] = STOP_SIGNALS) -> None:
        self.signals = [getattr(signal, s) for s in signals if hasattr(signal, s)]
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = signal.Signals(signum).name
        log.warning("received %s: stopping at the next step boundary", self.requested)

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous.clear()
