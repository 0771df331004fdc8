"""Reversible patches of moto's classes."""

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
