"""The component registry: kinds (names written in config files) mapped to the classes that rebuild them.

A component (domain, mollifier, schedule, process, operator, data set) is registered under a kind with
`register`; its ``to_dict()`` returns ``{"kind": ..., **settings}`` where nested components appear as their own
dicts. `build` turns such a dict back into the object: nested dicts that carry a ``"kind"`` are built first, then
the registered class is called with the settings as keyword arguments (or its ``from_dict`` classmethod, if it has
one). Nothing is imported by a name read from a file and nothing is unpickled: a kind that no imported module
registered is an error that says so.
"""

import json
import os
import sys
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar, get_type_hints

import torch

Registered = TypeVar("Registered", bound=Callable[..., Any])


class _Origin(NamedTuple):
    """Where a registered class or builder was defined, taken when it is registered (a module that ``runpy`` ran as
    ``__main__`` is gone afterwards)."""

    qualname: str
    module: str
    source: str | None
    """The resolved source file of its module; None for a module without one (a notebook's ``__main__``)."""

    def same_class(self, other: "_Origin") -> bool:
        """Whether two registrations are one class: the same qualified name from the same source file (a script run as
        ``__main__`` and imported as ``mymodule``), or from the same module where there is no file (a notebook cell
        run again)."""
        return (self.qualname, self.source or self.module) == (other.qualname, other.source or other.module)

    @property
    def name(self) -> str:
        """``module.QualifiedName``."""
        return f"{self.module}.{self.qualname}"

    def __str__(self) -> str:
        return self.name + (f" ({self.source})" if self.source else "")


def _origin(maker: Callable[..., Any]) -> _Origin:
    """The `_Origin` of a class or builder now."""
    module = str(getattr(maker, "__module__", None))
    file = getattr(sys.modules.get(module), "__file__", None)
    return _Origin(getattr(maker, "__qualname__", repr(maker)), module, os.path.realpath(file) if file else None)


_KINDS: dict[str, Callable[..., Any]] = {}
_ORIGINS: dict[str, _Origin] = {}
_ROUND_TRIPPED: set[str] = set()
"""The JSON of the configs that `check_round_trip` rebuilt since the last registration: a checkpoint save checks
again what the trainer checked when constructed, and rebuilding an operator allocates all its weights."""


def register(kind: str) -> Callable[[Registered], Registered]:
    """Class decorator (or function decorator, for builders) that makes ``kind`` rebuild the decorated object.

    Registering the same class again is allowed and the latest registration wins: a notebook cell run again (a new
    class object of the same module and qualified name), or a script run as ``__main__`` and also imported under its
    module name (the same qualified name from the same source file). Another class under a taken kind is an error.
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"kind must be a non-empty string, got {kind!r}")

    def decorate(maker: Registered) -> Registered:
        origin = _origin(maker)
        known = _ORIGINS.get(kind)
        if known is not None and not known.same_class(origin):
            raise ValueError(f"kind {kind!r} is already registered to {known}; {origin} is another class (another qualified "
                             "name or source file): register it under another kind")
        _KINDS[kind], _ORIGINS[kind] = maker, origin
        _ROUND_TRIPPED.clear()
        if isinstance(maker, type):
            maker.kind = kind  # type: ignore[attr-defined]
        return maker

    return decorate


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


def components(config: Any, where: str) -> list[tuple[str, str, Callable[..., Any]]]:
    """Every component that a JSON-read ``config`` names, as `build` would build them, without building any: ``(where
    it sits, kind, registered class or builder)``, outermost first; ``where`` names ``config`` (``"process"``), nested
    ones extend it (``"process.mollifier"``, ``"operator.mults[1]"``).

    Raises:
        TypeError: if a ``kind`` is not a string.
        ValueError: if a kind is not registered (`lookup`).
    """
    found, queue = [], deque([(config, where)])
    while queue:
        value, at = queue.popleft()
        if isinstance(value, dict):
            if "kind" in value:
                kind = value["kind"]
                if not isinstance(kind, str):
                    raise TypeError(f"{at} has a kind that is not a string: {kind!r}")
                try:
                    found.append((at, kind, lookup(kind)))
                except ValueError as error:
                    raise ValueError(f"{at}: {error}") from None
            queue.extend((v, f"{at}.{k}") for k, v in value.items() if k != "kind")
        elif isinstance(value, list):
            queue.extend((v, f"{at}[{i}]") for i, v in enumerate(value))
    return found


def made_class(maker: Callable[..., Any]) -> type | None:
    """The class whose objects a registered kind makes: the class itself, or a builder function's annotated return
    class (None where it has no such annotation)."""
    if isinstance(maker, type):
        return maker
    try:
        made = get_type_hints(maker).get("return")
    except (NameError, TypeError):  # an annotation that names what its module cannot resolve
        return None
    return made if isinstance(made, type) else None


def build(config: dict[str, Any]) -> Any:
    """The component that ``config`` (a ``to_dict()`` output) describes, nested components included (JSON lists
    become tuples)."""
    if not isinstance(config, dict) or "kind" not in config:
        raise ValueError(f"a component config must be a dict with a 'kind', got {config!r}")
    maker = lookup(config["kind"])
    settings = {key: _rebuild(value, build) for key, value in config.items() if key != "kind"}
    from_dict = getattr(maker, "from_dict", None)
    return from_dict(settings) if from_dict is not None else maker(**settings)


def _rebuild(value: Any, make: Callable[[dict[str, Any]], Any]) -> Any:
    """A setting read back from JSON: nested components built by ``make`` (also inside lists and dicts), lists (JSON's
    tuples) turned back into tuples."""
    if isinstance(value, dict):
        return make(value) if "kind" in value else {k: _rebuild(v, make) for k, v in value.items()}
    return tuple(_rebuild(v, make) for v in value) if isinstance(value, list) else value


def check_round_trip(component: Any, name: str) -> None:
    """Raise a one-line ``ValueError`` unless `build` rebuilds ``component`` from its ``to_dict()`` as a checkpoint
    would, through JSON: every kind registered, every nested component written with a ``kind``, the settings taken
    by the constructors, and the same ``to_dict()`` again. ``component`` may also be a ``to_dict()`` output (what a
    checkpoint stores); ``name`` is what the messages call it ("operator", "process"). The caller's random stream is
    left as it was (rebuilding initialises weights), and a config rebuilt before is not rebuilt again until a class
    is registered.

    Raises:
        TypeError: if ``component`` is neither a dict nor has a ``to_dict()`` method.
    """
    if isinstance(component, dict):
        config = component
    elif callable(getattr(component, "to_dict", None)):
        config = component.to_dict()
        _check_nested_kinds(component, config, name)
    else:
        raise TypeError(f"the {name} must have a to_dict() method (or be its output, a dict), got {type(component).__name__}")
    try:
        stored = json.loads(json.dumps(config))
    except (TypeError, ValueError) as error:
        raise ValueError(f"the {name}: its to_dict() is not JSON ({error}), so a checkpoint cannot store it") from None
    key = json.dumps(stored, sort_keys=True)
    if key not in _ROUND_TRIPPED:
        with torch.random.fork_rng(devices=[]):
            _build_checked(stored, name)
        _ROUND_TRIPPED.add(key)


def _no_kind(config: Any, name: str) -> ValueError:
    """The error for a ``to_dict()`` output without a ``kind``."""
    gives = f"a dict of {sorted(config)}" if isinstance(config, dict) else f"a {type(config).__name__}"
    return ValueError(f"the {name}: its to_dict() has no 'kind' (it gives {gives}), so a checkpoint could not tell which class "
                      "rebuilds it: write {'kind': <its registered kind>, **settings} (funcdiff.registry.component_dict)")


def _check_nested_kinds(component: Any, config: Any, name: str) -> None:
    """Raise `_no_kind` where ``config`` (``component.to_dict()``), or a setting of it that is an attribute of
    ``component`` with a ``to_dict()`` method, lacks a ``kind`` (it would reload as a plain dict)."""
    if not isinstance(config, dict) or "kind" not in config:
        raise _no_kind(config, name)
    for key, value in config.items():
        part = getattr(component, key, None)
        if isinstance(value, dict) and callable(getattr(part, "to_dict", None)):
            _check_nested_kinds(part, value, f"{name}'s {key}")


def _build_checked(config: Any, name: str) -> Any:
    """`build` of a JSON-read ``config`` that names what fails (``name``) and checks that each rebuilt component
    (nested ones first) writes ``config`` again."""
    if not isinstance(config, dict) or "kind" not in config:
        raise _no_kind(config, name)
    kind = config["kind"]
    if kind not in _KINDS:
        raise ValueError(f"the {name}: its kind {kind!r} is not registered, so its checkpoint would not load: decorate its class "
                         f"with @funcdiff.register({kind!r}) (registered kinds: {registered_kinds()})")
    settings = {key: _rebuild(value, lambda nested, key=key: _build_checked(nested, f"{name}'s {key}"))
                for key, value in config.items() if key != "kind"}
    maker = _KINDS[kind]
    from_dict = getattr(maker, "from_dict", None)
    try:
        built = from_dict(settings) if from_dict is not None else maker(**settings)
    except (TypeError, ValueError) as error:
        reason = " ".join(str(error).split())
        raise ValueError(f"the {name}: {_ORIGINS[kind].name} (kind {kind!r}) cannot be rebuilt from its to_dict(): {reason}") from error
    again = json.loads(json.dumps(built.to_dict()))
    if json.dumps(again, sort_keys=True) != json.dumps(config, sort_keys=True):
        changes = "; ".join(f"{key} {b!r} instead of {a!r}" for key, a, b in _differences(config, again, ""))
        raise ValueError(f"the {name}: rebuilt from its to_dict(), it writes {changes}: to_dict() must write the constructor's arguments")
    return built


def _differences(before: Any, after: Any, where: str) -> list[tuple[str, Any, Any]]:
    """``(dotted key, before, after)`` for each setting of two JSON values that differs (``where`` is their key)."""
    if isinstance(before, dict) and isinstance(after, dict):
        return [change for key in sorted({*before, *after}, key=str)
                for change in _differences(before.get(key), after.get(key), f"{where}.{key}" if where else str(key))]
    return [] if json.dumps(before) == json.dumps(after) else [(where or "the whole", before, after)]


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
