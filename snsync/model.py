"""Plain, typed data passed between the layers: what the readers return, what the planner
produces, what the executor and the state keep. The bottom layer: nothing here does I/O, and this
module imports nothing from snsync."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, overload

Record = Mapping[str, str]  # one ServiceNow row: field -> value
Progress = Callable[[str, int], None]  # (what, how many more) while reading or applying

USER_TABLE = "sys_user"
GROUP_TABLE = "sys_user_group"
MEMBER_TABLE = "sys_user_grmember"
REDACTED = "[redacted]"  # what every output shows instead of a value fed by Redact()


class ObjectType(StrEnum):
    """What kind of object a plan item, link or escrow entry is about."""

    USER = "user"
    GROUP = "group"
    MEMBERSHIP = "membership"
    REFERENCE = "reference"  # a record of a reference table (department, ...) snsync creates
    # Links only: membership rows that existed before snsync, linked but never deleted by it.
    KEPT_MEMBERSHIP = "membership_kept"

    @property
    def table(self) -> str | None:
        """The ServiceNow table of this kind; None for references (each names its own)."""
        return _TABLES.get(self)


_TABLES = {
    ObjectType.USER: USER_TABLE,
    ObjectType.GROUP: GROUP_TABLE,
    ObjectType.MEMBERSHIP: MEMBER_TABLE,
    ObjectType.KEPT_MEMBERSHIP: MEMBER_TABLE,
}


class Action(StrEnum):
    """What a plan item does to a ServiceNow record (the provisioning log's Action column)."""

    CREATE = "Create"
    UPDATE = "Update"
    DISABLE = "Disable"
    ENABLE = "Enable"
    DELETE = "Delete"  # only ever a group membership row snsync itself created or adopted
    STAGED_DISABLE = "StagedDisable"  # a disable held back by the deletion threshold
    SKIP = "Skip"


class Status(StrEnum):
    """How an action ended (the provisioning log's Status column)."""

    SUCCESS = "Success"
    FAILURE = "Failure"
    SKIPPED = "Skipped"
    WARNING = "Warning"


class Reason(StrEnum):
    """Reason codes, documented in README 'Reason codes'."""

    MISSING_MATCH_VALUE = "EntryJoiningPropertyValueIsMissing"
    AMBIGUOUS_MATCH = "AmbiguousMatch"
    MATCH_LINKED_ELSEWHERE = "MatchLinkedToAnotherUser"
    OWNED_ELSEWHERE = "RecordOwnedByAnotherSource"
    PROTECTED_RECORD = "ProtectedRecord"
    INVALID_LOOKUP = "InvalidLookupReference"
    MANAGER_NOT_PROVISIONED = "ManagerNotProvisioned"
    EXPRESSION_FAILED = "ExpressionEvaluationFailed"
    ATTRIBUTE_TOO_LONG = "AttributeValueTooLong"  # over limits.max_attribute_length: refused
    ACTION_SWITCHED_OFF = "ActionSwitchedOff"
    NOT_ACTIVE = "SourceUserNotActive"
    OUT_OF_SCOPE_KEPT = "SkipOutOfScopeDeletions"
    DISABLE_THRESHOLD = "DisableThresholdExceeded"
    SOURCE_INCOMPLETE = "SourceIncomplete"
    RETRY_BACKOFF = "RetryBackoff"
    INTERRUPTED = "Interrupted"
    TRANSIENT = "Transient"
    API_ERROR = "ServiceNowApiError"
    ADOPTION_HELD = "AdoptionHeld"  # matched a privileged or inactive record: needs approval
    MATCH_CLAIMED = "MatchClaimedByAnotherUser"  # another object matched it at a better precedence
    MEMBERSHIP_KEPT = "MembershipRowNotOwned"  # a member left; the row predates snsync: kept
    TARGET_INCOMPLETE = "TargetIncomplete"  # ServiceNow answered with too few records
    NOT_CREATED = "ReferencedRecordNotCreated"
    REDACTED_NOT_CACHED = "RedactedValueNotCached"  # incremental: only a digest was kept


@dataclass(frozen=True, slots=True)
class Assignment:
    """One row of the service principal's appRoleAssignedTo."""

    id: str
    principal_id: str
    principal_type: str  # User | Group | ServicePrincipal
    app_role_id: str
    principal_name: str = ""


@dataclass(frozen=True, slots=True)
class ScopeDecision:
    """Whether a user is in scope, and why, in words for the admin."""

    in_scope: bool
    reason: str


@dataclass(frozen=True)
class AppScope:
    """The enterprise app as Graph shows it: service principal, role values by id, assignments
    and the user members of its assigned groups. Raw facts; the engine decides scope from them."""

    service_principal_id: str
    display_name: str
    roles: Mapping[str, str]
    assignments: tuple[Assignment, ...]
    group_members: Mapping[str, tuple[str, ...]]
    incomplete: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceCache:
    """The directory as Graph returned it: users, assigned groups and their user members."""

    users: Mapping[str, dict[str, Any]]  # a DictView over the compact objects of a full read
    groups: Mapping[str, dict[str, Any]]
    members: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class DeltaLinks:
    """Where the next Graph delta rounds start."""

    users: str
    groups: str


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


@dataclass(frozen=True, slots=True)
class SourceObject:
    """A directory user or group as the mappings see it: Graph attributes plus synthesized ones."""

    id: str
    display_name: str
    attributes: Mapping[str, Any]
    in_scope: bool
    scope_reason: str
    refused: str | None = None  # why the object is refused as a whole (an over-long value)


@dataclass(frozen=True)
class SourceSnapshot:
    """Every directory user and assigned group of this cycle, keyed by directory object id."""

    users: Mapping[str, SourceObject]
    groups: Mapping[str, SourceObject] = field(default_factory=dict)
    members: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # group -> user ids
    incomplete: tuple[str, ...] = ()  # why part of the directory could not be read
    assignments: int = 0
    groups_expanded: int = 0


@dataclass(frozen=True)
class TargetSnapshot:
    """The ServiceNow side: records by sys_id, reference tables by display value, and the
    membership rows (by sys_id) of the groups in `member_groups` (group sys_ids)."""

    users: Mapping[str, Record]
    references: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    groups: Mapping[str, Record] = field(default_factory=dict)
    memberships: Mapping[str, Record] = field(default_factory=dict)
    member_groups: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Picture:
    """Everything one cycle read, both sides: the only input of planning besides the state."""

    source: SourceSnapshot
    target: TargetSnapshot


@dataclass(frozen=True)
class CachedPicture:
    """What the last cycle saw, kept in the state for the next incremental cycle."""

    directory: SourceCache
    target: TargetSnapshot


@dataclass(frozen=True, slots=True)
class Desired:
    """What one directory user's ServiceNow record should hold, computed by the mappings."""

    directory_id: str
    display_name: str
    in_scope: bool
    active: bool
    values: Mapping[str, str]  # written on create and update
    create_only: Mapping[str, str]  # written on create only
    references: Mapping[str, tuple[str, str]]  # field -> (table, display value or directory id)
    matching: tuple[tuple[str, str], ...]  # (field, value) in precedence order
    error: str | None = None  # an expression failed: the object fails, the others go on
    error_reason: Reason | None = None  # the reason code of `error` (default: expression)
    # Fields fed by a Redact() mapping: never shown or kept as such. Their value in `values` is
    # the value, or (for an object read from the cached picture) only its keyed digest.
    redacted: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Change:
    """One attribute's change, as shown to the admin and kept in the log."""

    field: str
    old: str | None
    new: str
    label: str | None = None  # display value of a reference (department name, manager name)
    redacted: bool = False  # fed by Redact(): written to ServiceNow, shown as [redacted]

    @property
    def shown_old(self) -> str | None:
        """The old value as every output shows it."""
        return REDACTED if self.redacted and self.old else self.old

    @property
    def shown_new(self) -> str:
        """The new value as every output shows it."""
        return REDACTED if self.redacted and self.new else self.new

    @property
    def shown_label(self) -> str | None:
        """The reference's display value as every output shows it."""
        return REDACTED if self.redacted and self.label else self.label


_CREATED: dict[str, dict[tuple[str, str | None], Change]] = {}
_CREATED_LIMIT = 256  # different values of one field before it counts as unique


def created_value(field: str, new: str, label: str | None, redacted: bool) -> Change:
    """The Change that sets `field` on a new record. Values that repeat from record to record
    (active, department, city, job title) are one shared object per field and value; a field
    once seen with more than a few hundred values (names, mail, ids) gets new objects, and so
    does a Redact() value (never kept beyond the cycle that writes it)."""
    part = _created_part(field, new, label, redacted)
    return part if isinstance(part, Change) else Change(field, None, part)


def _created_part(field: str, new: str, label: str | None, redacted: bool) -> Change | str:
    """created_value's Change, or only `new` for a plain unique value (Changes keeps that)."""
    if redacted:
        return Change(field, None, new, label, redacted)
    values = _CREATED.get(field)
    if values is None:
        if len(_CREATED) >= _CREATED_LIMIT:
            return new if label is None else Change(field, None, new, label)
        values = _CREATED[field] = {}
    elif len(values) > _CREATED_LIMIT:
        return new if label is None else Change(field, None, new, label)
    key = (new, label)
    found = values.get(key)
    if found is None:
        found = values[key] = Change(field, None, new, label)
    return found


class Changes(Sequence[Change]):
    """The changes of a created record, compactly: the field names (one tuple shared by the
    records with the same fields) and, per field, the shared Change of a repeated value
    (created_value) or only the new value of a plain unique one (names, mail, ids: no label,
    not redacted), whose Change is made each time the sequence is read. Equal to the tuple of
    the same Changes. At 100,000 users the unique values' Changes kept whole are about 50 MB."""

    __slots__ = ("_fields", "_parts")

    def __init__(self, fields: tuple[str, ...], parts: tuple[Change | str, ...]) -> None:
        self._fields = (
            _FIELD_LISTS.setdefault(fields, fields) if len(_FIELD_LISTS) < 1024 else fields
        )
        self._parts = parts

    @classmethod
    def created(cls, values: Iterable[tuple[str, str, str | None, bool]]) -> Changes:
        """The changes that set (field, new value, label, redacted) on a new record, each as
        created_value makes it."""
        fields: list[str] = []
        parts: list[Change | str] = []
        for name, new, label, redacted in values:
            fields.append(name)
            parts.append(_created_part(name, new, label, redacted))
        return cls(tuple(fields), tuple(parts))

    def plus(self, added: Iterable[Change]) -> Changes:
        """These changes and then `added`."""
        fields, parts = list(self._fields), list(self._parts)
        for change in added:
            fields.append(change.field)
            plain = change.old is None and change.label is None and not change.redacted
            parts.append(change.new if plain else change)
        return Changes(tuple(fields), tuple(parts))

    def _change(self, position: int) -> Change:
        part = self._parts[position]
        return part if isinstance(part, Change) else Change(self._fields[position], None, part)

    def __iter__(self) -> Iterator[Change]:
        for name, part in zip(self._fields, self._parts, strict=True):
            yield part if isinstance(part, Change) else Change(name, None, part)

    @overload
    def __getitem__(self, index: int) -> Change: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Change, ...]: ...

    def __getitem__(self, index: int | slice) -> Change | tuple[Change, ...]:
        if isinstance(index, slice):
            return tuple(self)[index]
        return self._change(range(len(self._parts))[index])

    def __len__(self) -> int:
        return len(self._parts)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Changes | tuple):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))


_FIELD_LISTS: dict[tuple[str, ...], tuple[str, ...]] = {}


@dataclass(frozen=True, slots=True)
class PlanItem:
    """One planned action on one object."""

    action: Action
    directory_id: str
    display_name: str
    sys_id: str | None
    changes: Sequence[Change] = ()  # a tuple, or a created record's compact Changes
    status: Status = Status.SUCCESS  # the expected status; executors turn it into the real one
    reason: str | None = None
    message: str = ""
    adopt: bool = False  # the record was matched, not linked: link it after the write
    deferred: Mapping[str, str] = field(default_factory=dict)  # manager field -> directory id
    object_type: ObjectType = ObjectType.USER
    reference_table: str = ""  # for ObjectType.REFERENCE: the table the record goes into
    # Fields (and "sys_id") holding a placeholder for a record created earlier in the cycle:
    # the executor puts the new record's sys_id there before the write.
    pending: frozenset[str] = frozenset()
    # A redacted value was needed that the cached picture keeps only as a digest: the next
    # cycle reads everything (and writes it).
    full_next: bool = False

    def __post_init__(self) -> None:
        # Hundreds of thousands of items name the same few pending fields, and most defer
        # nothing: one shared set and one shared empty mapping, not one each (~280 bytes).
        pending = self.pending
        if pending:
            shared = _FIELD_SETS.get(pending)
            if shared is None and len(_FIELD_SETS) < 1024:
                shared = _FIELD_SETS[pending] = pending
            object.__setattr__(self, "pending", shared or pending)
        elif pending is not _NO_FIELDS:
            object.__setattr__(self, "pending", _NO_FIELDS)
        if not self.deferred:
            object.__setattr__(self, "deferred", _NOTHING)

    @property
    def table(self) -> str:
        """The ServiceNow table this item writes to."""
        return self.object_type.table or self.reference_table

    @property
    def kind(self) -> str:
        """What logs and reports call the object: user, group, membership or a reference table."""
        return self.reference_table or self.object_type.value

    @property
    def writes(self) -> bool:
        """Whether executing this item sends a write to ServiceNow."""
        if self.action in (Action.SKIP, Action.STAGED_DISABLE):
            return False
        return self.status is not Status.FAILURE


@dataclass(frozen=True)
class Plan:
    """Everything one cycle would do, in execution order, plus what was left as is."""

    items: tuple[PlanItem, ...]
    unchanged: int = 0
    missing: frozenset[tuple[str, str]] = frozenset()  # (table, display value) not found

    def counts(self) -> dict[str, int]:
        """Items by action."""
        result: dict[str, int] = {}
        for item in self.items:
            result[item.action.value] = result.get(item.action.value, 0) + 1
        return result


_NOTHING: Mapping[str, str] = MappingProxyType({})
_NO_FIELDS: frozenset[str] = frozenset()
# One frozenset object per distinct set of pending field names (there are few).
_FIELD_SETS: dict[frozenset[str], frozenset[str]] = {}


def placeholder(object_type: ObjectType | str, directory_id: str) -> str:
    """What a plan writes where the sys_id of a record created this cycle goes."""
    return f"(new {object_type} {directory_id})"


def placeholder_of(item: PlanItem) -> str:
    """The placeholder that stands for the record `item` creates (or adopts)."""
    return placeholder(item.kind, item.directory_id)


@dataclass(frozen=True, slots=True)
class Result:
    """How one plan item ended."""

    item: PlanItem
    status: Status
    sys_id: str | None
    reason: str | None = None
    message: str = ""
    record: Record | None = None


@dataclass(frozen=True)
class Held:
    """Disables held back by the threshold in one cycle."""

    object_type: str
    count: int
    limit: int
    limit_text: str


@dataclass(frozen=True)
class EscrowEntry:
    """An object that failed and waits for its next attempt."""

    object_type: str
    directory_id: str
    display_name: str
    failures: int
    first_failed: float
    last_failed: float
    next_attempt: float
    reason: str | None
    message: str


@dataclass(frozen=True)
class Quarantine:
    """Why and until when cycles are held back."""

    since: float
    until: float
    level: int
    reason: str

    @property
    def stopped(self) -> bool:
        return self.until == float("inf")
