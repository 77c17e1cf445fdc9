"""JsonConfig: the JSON round trip of frozen config dataclasses (operators, latent models, training settings)."""

import dataclasses
import typing
from typing import Any, TypeVar

from beartype.door import is_bearable

Config = TypeVar("Config", bound="JsonConfig")


class JsonConfig:
    """``to_dict`` / ``from_dict`` for frozen dataclasses whose fields are ints, floats, strings and tuples of ints."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls: type[Config], data: dict[str, Any]) -> Config:
        """Rebuild from `to_dict` output (lists become tuples); unknown keys raise ``ValueError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"data has unknown keys {sorted(unknown)} for {cls.__name__}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def type_errors(self) -> list[str]:
        """``name=value`` of each field whose value does not have its annotated type (an int is a float too)."""
        hints = typing.get_type_hints(type(self))
        wrong = []
        for field in dataclasses.fields(self):
            value, hint = getattr(self, field.name), hints[field.name]
            as_float = float(value) if isinstance(value, int) and not isinstance(value, bool) else None
            if not is_bearable(value, hint) and not (as_float is not None and is_bearable(as_float, hint)):
                wrong.append(f"{field.name}={value!r} (expected {hint.__name__ if isinstance(hint, type) else str(hint).replace('typing.', '')})")
        return wrong
