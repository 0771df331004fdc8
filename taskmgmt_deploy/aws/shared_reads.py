"""Reads that several resources need from one AWS answer, made once per read phase.

A function's policy document holds the statements of every invoke permission on it (the rules'
and the APIs'), and each of those resources reads it. While a read phase is open, the first
caller of a key makes the call and every other caller, in whichever thread, gets its answer (or
its error); outside a phase every call is made. A phase only ever shares describe calls, and ends
before anything is changed, so no answer outlives the state it describes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


class SharedReads:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = 0  # phases open now: nested or from several threads
        self._answers: dict[Hashable, Future[Any]] = {}

    @contextmanager
    def phase(self) -> Iterator[None]:
        with self._lock:
            self._open += 1
        try:
            yield
        finally:
            with self._lock:
                self._open -= 1
                if not self._open:
                    self._answers.clear()

    def read(self, key: Hashable, call: Callable[[], T]) -> T:
        with self._lock:
            if not self._open:
                answer, first = None, False
            else:
                answer = self._answers.get(key)
                first = answer is None
                if first:
                    answer = self._answers[key] = Future()
        if answer is None:
            return call()
        if first:
            try:
                answer.set_result(call())
            except BaseException as exc:  # noqa: BLE001 - handed to every caller of the key
                answer.set_exception(exc)
        return answer.result()  # type: ignore[no-any-return]
