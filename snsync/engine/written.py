"""The results of a cycle's writes, kept compactly while the cycle runs (issue 11 item 5).

A first sync of 100,000 users ends with some 216,000 results. Kept whole, each held its Result,
the item as it was sent (a copy of the planned one with its placeholders replaced by the new
sys_ids: a new PlanItem, a new tuple of changes and a new Change for each reference) and the
write's answer: about 100 MiB beyond the plan. Here a result that went as planned (Success, the
planned reason and message) keeps only its sys_id and the answer; anything else (failures,
warnings, skips, interruptions) is kept whole. The item as sent is made again when a result is
asked for: the placeholders it named are those of the items it waited for (engine/schedule.py),
whose sys_ids are kept here, so it is the very item that was sent.

`Written` is a Sequence of Results in the plan's order, the same Results the executor produced.
`outcomes()` is the cheap view for what needs no change of an item (links, counts, escrow, the
cached picture): a result that went as planned comes with its planned item."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import overload

from snsync.compact import Row
from snsync.model import (
    Action,
    ObjectType,
    PlanItem,
    Record,
    Result,
    Status,
    placeholder_of,
)

Resolve = Callable[[PlanItem, Mapping[str, str]], "PlanItem | Result"]
_NONE, _PLANNED, _WHOLE = 0, 1, 2  # no result yet; went as planned (compact); kept whole


def packed(record: Record | None) -> Record | None:
    """The answer as Written keeps it (and the picture it saves): a compact.Row, its field
    names shared by every answer with the same fields and its values in a tuple, instead of a
    dict (a user's answer of 13 fields takes about 180 bytes instead of 460, a membership
    row's 110 instead of 180)."""
    return Row.of(record) if isinstance(record, dict) else record


class _Results(Sequence[Result]):
    """A Sequence of Results each made when asked for (`_at`), in order."""

    @abstractmethod
    def _at(self, index: int) -> Result: ...

    @overload
    def __getitem__(self, index: int) -> Result: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Result]: ...

    def __getitem__(self, index: int | slice) -> Result | Sequence[Result]:
        if isinstance(index, slice):
            return [self._at(i) for i in range(*index.indices(len(self)))]
        return self._at(index)

    def __iter__(self) -> Iterator[Result]:
        return (self._at(i) for i in range(len(self)))


class Written(_Results):
    """One Result per item of `items` (the waves' items in order), kept compactly."""

    def __init__(
        self,
        items: Sequence[PlanItem],
        waits: Sequence[Sequence[int]],
        resolve: Resolve,
    ) -> None:
        self._items = items
        self._waits = waits  # the items each item waited for (whose records it may name)
        self._resolve = resolve
        self._kept = bytearray(len(items))
        self._sys_ids: list[str | None] = [None] * len(items)
        self._records: list[Record | None] = [None] * len(items)
        self._whole: dict[int, Result] = {}

    def put(self, index: int, result: Result) -> None:
        """Keep the result of item `index`."""
        planned = self._items[index]
        if (
            result.status is Status.SUCCESS
            and result.reason == planned.reason
            and result.message == planned.message
        ):
            self._kept[index] = _PLANNED
            self._sys_ids[index] = result.sys_id
            self._records[index] = packed(result.record)
        else:
            self._kept[index] = _WHOLE
            self._whole[index] = result

    def made(self, index: int) -> str | None:
        """The sys_id of the record item `index` created or adopted (None: none, or not yet)."""
        kept = self._kept[index]
        if kept == _NONE:
            return None
        if kept == _WHOLE:
            result = self._whole[index]
            if result.status not in (Status.SUCCESS, Status.WARNING):
                return None
            item, sys_id = result.item, result.sys_id
        else:
            item, sys_id = self._items[index], self._sys_ids[index]
        if not sys_id or item.object_type is ObjectType.MEMBERSHIP:
            return None
        return sys_id if item.action is Action.CREATE or item.adopt else None

    def view(self, index: int) -> dict[str, str]:
        """Placeholder -> sys_id of the records item `index` may name: those created or
        adopted by the items it waited for."""
        found = ((i, self.made(i)) for i in self._waits[index])
        return {placeholder_of(self._items[i]): sys_id for i, sys_id in found if sys_id}

    def whole(self) -> list[Result]:
        """The results that did not go as planned (failures, warnings, skips), in order."""
        return [self._whole[i] for i in sorted(self._whole)]

    def outcomes(self) -> Sequence[Result]:
        """The results, those that went as planned with their planned item (see module doc)."""
        return _Outcomes(self)

    def __len__(self) -> int:
        return len(self._items)

    def _at(self, index: int) -> Result:
        return self._result(index, as_sent=True)

    def _result(self, index: int, *, as_sent: bool) -> Result:
        index = range(len(self._items))[index]  # negative indices; IndexError past the end
        kept = self._kept[index]
        if kept == _WHOLE:
            return self._whole[index]
        if kept == _NONE:
            raise LookupError(f"item {index} has no result yet")
        item = self._items[index]
        if as_sent and item.pending and item.writes:
            sent = self._resolve(item, self.view(index))
            assert isinstance(sent, PlanItem), "a result that went as planned resolved then"
            item = sent
        return Result(
            item, Status.SUCCESS, self._sys_ids[index], item.reason, item.message,
            self._records[index],
        )  # fmt: skip


class _Outcomes(_Results):
    def __init__(self, written: Written) -> None:
        self._written = written

    def __len__(self) -> int:
        return len(self._written)

    def _at(self, index: int) -> Result:
        return self._written._result(index, as_sent=False)
