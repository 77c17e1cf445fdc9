"""JsonConfig: the JSON round trip of frozen config dataclasses (operators, latent models, training settings)."""

import dataclasses
from typing import Any, TypeVar

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
