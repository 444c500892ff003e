"""Compact, read-only storage for the objects a cycle holds by the hundred thousand (issue 11
item 5, docs/performance.md "The read and plan side, compact"): `Row` (a mapping whose values
lie in a tuple against a key list shared by the rows with the same keys), `DictView` (rows seen
as the plain dicts they were made from), `UserAttributes` (a directory user's attributes with
the synthesized ones computed when asked for). Bottom layer, like model.py: imports nothing
from snsync."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

_NOTHING: Mapping[str, Any] = MappingProxyType({})


class Shape:
    """The keys of directory objects that have the same keys in the same order, with each key's
    position: shared by all of them (one per shape, not one dict per object)."""

    __slots__ = ("index", "keys")

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys
        self.index = {key: position for position, key in enumerate(keys)}


_SHAPES: dict[tuple[str, ...], Shape] = {}
_SHAPES_LIMIT = 256  # different key lists before new ones get a shape of their own


def shape_of(keys: tuple[str, ...]) -> Shape:
    """The shared Shape of these keys (a crafted answer with many key lists gets own ones)."""
    found = _SHAPES.get(keys)
    if found is None:
        found = Shape(keys)
        if len(_SHAPES) < _SHAPES_LIMIT:
            _SHAPES[keys] = found
    return found


class Row(Mapping[str, Any]):
    """A read-only mapping stored compactly: its values in a tuple against a Shape shared by
    the rows with the same keys (a dict per object costs about 450 bytes at 20 keys; a Row
    about 250). Used for the directory objects as Graph returned them (nested objects, the
    manager, are Rows too; `as_dict()` gives the object back exactly as parsed, key order
    included) and for each desired record's values."""

    __slots__ = ("_shape", "_values")

    def __init__(self, shape: Shape, values: tuple[Any, ...]) -> None:
        self._shape = shape
        self._values = values

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Row:
        """A Row of these keys and values (nested objects as they are)."""
        return cls(shape_of(tuple(values)), tuple(values.values()))

    def __getitem__(self, key: str) -> Any:
        position = self._shape.index.get(key)
        if position is None:
            raise KeyError(key)
        return self._values[position]

    def get(self, key: str, default: Any = None) -> Any:
        position = self._shape.index.get(key)
        return default if position is None else self._values[position]

    def __contains__(self, key: object) -> bool:
        return key in self._shape.index

    def __iter__(self) -> Iterator[str]:
        return iter(self._shape.keys)

    def __len__(self) -> int:
        return len(self._values)

    def as_dict(self) -> dict[str, Any]:
        """The object as a new dict, nested objects included."""
        return {
            key: value.as_dict() if isinstance(value, Row) else value
            for key, value in zip(self._shape.keys, self._values, strict=True)
        }

    def __repr__(self) -> str:
        # As the dict it stands for: over-long checks measure nested values by their text.
        return repr(self.as_dict())


def compact(values: Mapping[str, Any]) -> Mapping[str, Any]:
    """`values` as a read-only Row (one shared empty mapping when there are none): for the
    mappings that exist once per object (a desired record's values and references)."""
    return Row.of(values) if values else _NOTHING


def as_dict(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A directory object (a Row or a dict) as a new plain dict."""
    return raw.as_dict() if isinstance(raw, Row) else dict(raw)


class DictView(Mapping[str, dict[str, Any]]):
    """Object id -> the object as a plain dict, made on each access from the compact objects
    of a read (the cached picture is written from it, one object at a time)."""

    __slots__ = ("_objects",)

    def __init__(self, objects: Mapping[str, Mapping[str, Any]]) -> None:
        self._objects = objects

    def __getitem__(self, key: str) -> dict[str, Any]:
        return as_dict(self._objects[key])

    def __contains__(self, key: object) -> bool:
        return key in self._objects

    def __iter__(self) -> Iterator[str]:
        return iter(self._objects)

    def __len__(self) -> int:
        return len(self._objects)


# The attributes synthesized for a user (UserAttributes), in the order the mappings see them.
SYNTHESIZED_USER = ("objectId", "IsSoftDeleted", "telephoneNumber", "manager", "appRoleAssignments")
_SYNTHESIZED_USER = frozenset(SYNTHESIZED_USER)


class UserAttributes(Mapping[str, Any]):
    """A directory user's attributes as the mappings see them: the object as Graph returned it,
    with the attributes Azure's schema synthesizes on top (objectId, IsSoftDeleted,
    telephoneNumber, manager, appRoleAssignments), computed when asked for instead of kept
    (neither the Graph object nor a dict of synthesized values is copied per user)."""

    __slots__ = ("_base", "_deleted", "_roles")

    def __init__(self, base: Mapping[str, Any], soft_deleted: bool, roles: tuple[str, ...]) -> None:
        self._base = base
        self._deleted = soft_deleted
        self._roles = roles

    def _synthesized(self, key: str) -> Any:
        base = self._base
        if key == "objectId":
            return base.get("id")
        if key == "IsSoftDeleted":
            return self._deleted
        if key == "telephoneNumber":
            phones = base.get("businessPhones") or []
            return phones[0] if phones else None
        if key == "manager":
            manager = base.get("manager")
            return manager.get("id") if isinstance(manager, Mapping) else None
        return list(self._roles)

    def __getitem__(self, key: str) -> Any:
        if key in _SYNTHESIZED_USER:
            return self._synthesized(key)
        return self._base[key]

    def get(self, key: str, default: Any = None) -> Any:
        if key in _SYNTHESIZED_USER:
            return self._synthesized(key)
        return self._base.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in _SYNTHESIZED_USER or key in self._base

    def __iter__(self) -> Iterator[str]:
        yield from SYNTHESIZED_USER
        yield from (k for k in self._base if k not in _SYNTHESIZED_USER)

    def __len__(self) -> int:
        return len(SYNTHESIZED_USER) + sum(1 for k in self._base if k not in _SYNTHESIZED_USER)

    def __repr__(self) -> str:
        return f"UserAttributes({dict(self)!r})"
