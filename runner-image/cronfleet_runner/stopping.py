"""A stop request shared between the runner and the task it runs.

The runner turns SIGTERM into a stop request; tasks that own something that
outlives a thread (a child process, an event loop) register a callback to
end it, and tasks that wait poll or wait on the request instead of sleeping.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class StopRequest:
    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self.reason: str | None = None

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds; True when a stop was requested."""
        return self._event.wait(timeout)

    def on_request(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` once a stop is requested (now, if it already was).

        Returns a function that unregisters the callback, for tasks that finish
        first. Callbacks must be quick: they run on the runner's main thread.
        """
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return lambda: self._forget(callback)
        callback()
        return lambda: None

    def _forget(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    def request(self, reason: str) -> list[BaseException]:
        """Request a stop; returns the errors raised by callbacks (they do not stop the others)."""
        with self._lock:
            if self._event.is_set():
                return []
            self.reason = reason
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        errors: list[BaseException] = []
        for callback in callbacks:
            try:
                callback()
            except Exception as error:
                errors.append(error)
        return errors
