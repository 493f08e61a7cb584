"""One registry style for the whole package: lazy `"module:attr"` tables.

Registering costs no import: the target module is imported the first time its entry is used,
so `import mmedge` stays light and a missing optional dependency only matters when used.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from mmedge.errors import ConfigError, MmedgeError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name → `"package.module:attribute"`, resolved on first use."""

    def __init__(self, kind: str, entries: dict[str, str], error: type[MmedgeError] = ConfigError) -> None:
        self.kind, self.error = kind, error
        self._entries = dict(entries)
        self._loaded: dict[str, T] = {}

    def register(self, name: str, target: str | T) -> None:
        """Add `name` as 'package.module:attribute' (lazy) or as an object (already imported)."""
        self._loaded.pop(name, None)
        if isinstance(target, str):
            if ":" not in target:
                raise ConfigError(f"{self.kind} '{name}': target must be 'package.module:attribute', got {target!r}")
            self._entries[name] = target
        else:
            self._entries[name] = f"<object {target!r}>"
            self._loaded[name] = target

    def unregister(self, name: str) -> None:
        """Remove `name` (no error if absent)."""
        self._entries.pop(name, None)
        self._loaded.pop(name, None)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> T:
        """The registered object; the registry's error type (listing the choices) if unknown."""
        if name in self._loaded:
            return self._loaded[name]
        target = self._entries.get(name)
        if target is None:
            raise self.error(f"unknown {self.kind} '{name}' (choose from: {', '.join(self.names())})")
        module_name, attr = target.split(":", 1)
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        self._loaded[name] = obj
        return obj  # type: ignore[no-any-return]
