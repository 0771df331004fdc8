"""Reversible patches of moto's classes: every change the emulator, the tests' fault injectors and
the benchmark make to moto's behaviour goes through one of these, and is undone in reverse order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Patches:
    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, Any]] = []

    def around(self, owner: Any, name: str, hook: Callable[..., Any]) -> None:
        """owner.name(obj, *args) becomes hook(original, obj, *args)."""
        original = getattr(owner, name)
        self._saved.append((owner, name, original))

        def patched(obj: Any, *args: Any, **kwargs: Any) -> Any:
            return hook(original, obj, *args, **kwargs)

        setattr(owner, name, patched)

    def undo(self) -> None:
        while self._saved:
            owner, name, original = self._saved.pop()
            setattr(owner, name, original)

    def __enter__(self) -> Patches:
        return self

    def __exit__(self, *exc: object) -> None:
        self.undo()
