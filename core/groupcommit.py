"""Group commit: threads that each need the same kind of write hand their items to whichever of them is writing
now, and one transaction carries them all. A database round trip and a commit cost the same for one item or fifty,
so under load the cost per item falls, while a lone caller still writes at once, without waiting for company."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    item: T
    done: bool = False
    error: BaseException | None = None


class GroupCommit(Generic[T]):
    """``run(item)`` returns once ``work`` has handled a batch holding ``item``. ``work`` gets at most ``limit``
    items, oldest first, one batch at a time per ``lock`` (share one lock between group commits to keep a single
    writer per process: SQLite's busy wait sleeps for milliseconds). If a batch fails, each of its items is tried
    alone, so a bad item fails only its own caller."""

    def __init__(
        self, work: Callable[[Sequence[T]], None], lock: threading.Lock | None = None, limit: int = 64
    ) -> None:
        self._work = work
        self._lock = lock or threading.Lock()
        self._limit = limit
        self._queue: list[_Entry[T]] = []
        self._busy = False
        self._cond = threading.Condition()

    def run(self, item: T) -> None:
        entry = _Entry(item)
        with self._cond:
            self._queue.append(entry)
            while not entry.done:
                if self._busy:
                    self._cond.wait()
                    continue
                self._busy = True
                batch: list[_Entry[T]] = []
                self._cond.release()
                try:
                    with self._lock:  # whoever queues while we wait for the writer rides along
                        with self._cond:
                            batch, self._queue = self._queue[: self._limit], self._queue[self._limit :]
                        self._handle(batch)
                finally:
                    self._cond.acquire()
                    for e in batch:
                        e.done = True
                    self._busy = False
                    self._cond.notify_all()
        if entry.error is not None:
            raise entry.error

    def _handle(self, batch: list[_Entry[T]]) -> None:
        try:
            self._work([e.item for e in batch])
        except BaseException as exc:  # handed to the callers, who each raise their own
            if len(batch) == 1:
                batch[0].error = exc
                return
            for e in batch:
                try:
                    self._work([e.item])
                except BaseException as one:
                    e.error = one
