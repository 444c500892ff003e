"""Plain, typed data passed between the stages of a cycle. Nothing here does I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

Record = Mapping[str, str]


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


@dataclass(frozen=True)
class SourceObject:
    """A directory user or group as the mappings see it: Graph attributes plus synthesized ones."""

    id: str
    display_name: str
    attributes: Mapping[str, Any]
    in_scope: bool
    scope_reason: str


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
    """The ServiceNow side: records by sys_id, and reference tables by display value."""

    users: Mapping[str, Record]
    references: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    groups: Mapping[str, Record] = field(default_factory=dict)


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class Change:
    """One attribute's change, as shown to the admin and kept in the log."""

    field: str
    old: str | None
    new: str
    label: str | None = None  # display value of a reference (department name, manager name)


@dataclass(frozen=True)
class PlanItem:
    """One planned action on one object."""

    action: Action
    directory_id: str
    display_name: str
    sys_id: str | None
    changes: tuple[Change, ...] = ()
    status: Status = Status.SUCCESS  # the expected status; executors turn it into the real one
    reason: str | None = None
    message: str = ""
    adopt: bool = False  # the record was matched, not linked: link it after the write
    deferred: Mapping[str, str] = field(default_factory=dict)  # manager field -> directory id
    object_type: str = "user"  # user | group | membership

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


@dataclass(frozen=True)
class Result:
    """How one plan item ended."""

    item: PlanItem
    status: Status
    sys_id: str | None
    reason: str | None = None
    message: str = ""
    record: Record | None = None
