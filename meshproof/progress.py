"""Live progress: one line per provisioning step or long wait, printed as it happens, with elapsed time.

The engine calls `say(...)`; where the line goes is the caller's choice (`use(sink)`): under pytest the run
plugin installs a sink that writes to the terminal with output capture suspended, so the lines show while
a cluster is created rather than under "Captured stdout" after a failure. Without a sink lines go to the
`meshproof.progress` logger.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger("meshproof.progress")

Sink = Callable[[str], None]

_lock = threading.Lock()
_sink: Sink | None = None
_started = time.monotonic()


def elapsed_label(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


@contextmanager
def use(sink: Sink, *, clock: Callable[[], float] = time.monotonic) -> Iterator[None]:
    """Send progress lines to `sink` for the duration; elapsed time counts from here."""
    global _sink, _started
    with _lock:
        previous, previous_start = _sink, _started
        _sink, _started = sink, clock()
    try:
        yield
    finally:
        with _lock:
            _sink, _started = previous, previous_start


def say(message: str, *, clock: Callable[[], float] = time.monotonic) -> None:
    """One progress line, prefixed with the time elapsed since the run began (`[m:ss]`)."""
    line = f"[{elapsed_label(clock() - _started)}] {message}"
    sink = _sink
    if sink is None:
        log.info(line)
        return
    try:
        sink(line)
    except Exception:  # a terminal that went away must not fail an install
        log.info(line)
