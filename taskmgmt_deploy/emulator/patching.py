"""Reversible patches of moto's classes: every change the emulator, the tests' fault injectors and
the benchmark make to moto's behaviour goes through one of these, and is undone in reverse order."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any


class Patches:
    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def around(self, owner: Any, name: str, hook: Callable[..., Any]) -> None:
        """owner.name(obj, *args) becomes hook(original, obj, *args)."""
        original = getattr(owner, name)

        def patched(obj: Any, *args: Any, **kwargs: Any) -> Any:
            return hook(original, obj, *args, **kwargs)

        setattr(owner, name, patched)
        self._undo.append(lambda: setattr(owner, name, original))

    def operation(self, response_class: Any, operation: str, handler: Callable[[Any], Any]) -> None:
        """An API operation moto does not implement: moto dispatches `operation` (its snake_case
        name) to handler(response) on that service's response class."""
        name = "".join("_" + c.lower() if c.isupper() else c for c in operation).lstrip("_")
        if name in vars(response_class):
            raise ValueError(f"{response_class.__name__}.{name} exists: patch it with around()")

        def method(response: Any) -> Any:
            return handler(response)

        setattr(response_class, name, method)
        self._undo.append(lambda: delattr(response_class, name))

    def route(self, url_paths: MutableMapping[str, Any], path: str, dispatch: Any) -> None:
        """A URL moto's routing table (a service's urls.url_paths) lacks, for a new operation."""
        url_paths[path] = dispatch
        self._undo.append(lambda: url_paths.pop(path, None))

    def undo(self) -> None:
        while self._undo:
            self._undo.pop()()

    def __enter__(self) -> Patches:
        return self

    def __exit__(self, *exc: object) -> None:
        self.undo()
