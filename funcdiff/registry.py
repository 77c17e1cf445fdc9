"""The component registry: kinds (names written in config files) mapped to the classes that rebuild them.

A component (domain, mollifier, schedule, process, operator, data set) is registered under a kind with
`register`; its ``to_dict()`` returns ``{"kind": ..., **settings}`` where nested components appear as their own
dicts. `build` turns such a dict back into the object: nested dicts that carry a ``"kind"`` are built first, then
the registered class is called with the settings as keyword arguments (or its ``from_dict`` classmethod, if it has
one). Nothing is imported by a name read from a file and nothing is unpickled: a kind that no imported module
registered is an error that says so.
"""

from collections.abc import Callable
from typing import Any, TypeVar

Registered = TypeVar("Registered", bound=Callable[..., Any])

_KINDS: dict[str, Callable[..., Any]] = {}


def register(kind: str) -> Callable[[Registered], Registered]:
    """Class decorator (or function decorator, for builders) that makes ``kind`` rebuild the decorated object."""
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"kind must be a non-empty string, got {kind!r}")

    def decorate(maker: Registered) -> Registered:
        known = _KINDS.get(kind)
        if known is not None and _qualified(known) != _qualified(maker):
            raise ValueError(f"kind {kind!r} is already registered to {_qualified(known)}")
        _KINDS[kind] = maker
        if isinstance(maker, type):
            maker.kind = kind  # type: ignore[attr-defined]
        return maker

    return decorate


def _qualified(maker: Callable[..., Any]) -> str:
    """``module.QualifiedName`` of a registered class or function (re-registering the same one is allowed)."""
    return f"{maker.__module__}.{maker.__qualname__}"


def registered_kinds() -> list[str]:
    """Every kind registered so far, sorted."""
    return sorted(_KINDS)


def lookup(kind: str) -> Callable[..., Any]:
    """The class (or builder) registered under ``kind``; ``ValueError`` if none is."""
    if kind not in _KINDS:
        raise ValueError(
            f"unknown component kind {kind!r}: import the module that registers it (funcdiff.register) before "
            f"loading; registered kinds: {registered_kinds()}"
        )
    return _KINDS[kind]


def build(config: dict[str, Any]) -> Any:
    """The component that ``config`` (a ``to_dict()`` output) describes, nested components included (JSON lists
    become tuples)."""
    if not isinstance(config, dict) or "kind" not in config:
        raise ValueError(f"a component config must be a dict with a 'kind', got {config!r}")
    maker = lookup(config["kind"])
    settings = {key: _rebuild(value) for key, value in config.items() if key != "kind"}
    from_dict = getattr(maker, "from_dict", None)
    return from_dict(settings) if from_dict is not None else maker(**settings)


def _rebuild(value: Any) -> Any:
    """A setting read back from JSON: nested components built (also inside lists and dicts), lists (JSON's tuples)
    turned back into tuples."""
    if isinstance(value, dict):
        return build(value) if "kind" in value else {k: _rebuild(v) for k, v in value.items()}
    return tuple(_rebuild(v) for v in value) if isinstance(value, list) else value


def component_dict(kind: str, **settings: Any) -> dict[str, Any]:
    """``{"kind": kind, **settings}`` with nested components (also inside tuples, lists and dicts) replaced by their
    ``to_dict()`` and tuples by lists."""
    def plain(value: Any) -> Any:
        if callable(getattr(value, "to_dict", None)):
            return value.to_dict()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return [plain(v) for v in value] if isinstance(value, (tuple, list)) else value

    return {"kind": kind, **{key: plain(value) for key, value in settings.items()}}
