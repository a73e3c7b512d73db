"""Named plugins from an entry-point group (prompt rules, metrics), built-ins declared the same way.

evalsuite's own prompt rules and metrics are declared in its ``pyproject.toml`` exactly as a third-party
package declares its own, so adding one is a class and an entry point — never an edit of the module
that lists them. A name two packages claim is an error naming both: a plugin never silently replaces
another's entry.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .errors import InputError


def _dist(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return f"the package of {ep.value}"
    return f"{dist.metadata['Name']} {dist.version}"


@cache
def _claims(group: str) -> dict[str, tuple[EntryPoint, ...]]:
    found: dict[str, list[EntryPoint]] = {}
    for ep in entry_points(group=group):
        claims = found.setdefault(ep.name, [])
        if all((e.value, _dist(e)) != (ep.value, _dist(ep)) for e in claims):  # one package seen twice
            claims.append(ep)
    return {name: tuple(claims) for name, claims in sorted(found.items())}


def load_group(group: str, check: Callable[[str, Any], None] | None = None) -> dict[str, Any]:
    """Every entry of ``group``, loaded, by name (sorted): InputError for a name claimed twice, or for an
    object ``check(name, obj)`` refuses."""
    out: dict[str, Any] = {}
    for name, claims in _claims(group).items():
        if len(claims) > 1:
            who = " and ".join(f"{_dist(ep)} ({ep.value})" for ep in claims)
            raise InputError(
                f"{group}: {name!r} is registered by {len(claims)} packages: {who}",
                hint="uninstall one of them, or ask its author to rename the entry",
            )
        try:
            obj = claims[0].load()
        except Exception as e:  # a broken plugin is named, not a traceback
            raise InputError(
                f"{group}: entry {name!r} ({claims[0].value}, from {_dist(claims[0])}) fails to load: {e}",
                hint="reinstall or uninstall that package",
            ) from e
        if check is not None:
            check(name, obj)
        out[name] = obj
    if not out:
        raise InputError(
            f"no {group} entries are registered",
            hint="evalsuite must be installed (pip install -e .) so its entry points exist",
        )
    return out
