"""Matching for a whole cycle (pure): which existing record each unlinked directory object would
adopt. Matches are decided across all objects at once, never one object at a time, so the order
in which objects come (display names an attacker may choose) cannot change who wins a record."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from snsync.model import Desired, Reason

ByField = Mapping[str, Mapping[str, list[str]]]  # matching field -> lower-case value -> sys_ids


@dataclass(frozen=True)
class Match:
    """The record an object may adopt, and through which matching attribute."""

    sys_id: str
    rank: int  # 0 = the first matching attribute (precedence 1)
    field: str
    value: str


@dataclass(frozen=True)
class Refused:
    """Why an object adopts nothing and is not created either."""

    reason: Reason
    message: str
    sys_id: str | None = None


def resolve_matches(
    wants: Iterable[Desired], by_field: ByField, claimed: Mapping[str, str]
) -> dict[str, Match | Refused]:
    """Each object's first matching attribute with a hit names its candidate; a record claimed by
    several objects goes to the one matching at the lowest precedence number, and to nobody when
    two or more tie there. `claimed` maps linked records to their directory object."""
    result: dict[str, Match | Refused] = {}
    names: dict[str, str] = {}
    for want in wants:
        names[want.directory_id] = want.display_name
        found = _first_match(want, by_field, claimed)
        if found is not None:
            result[want.directory_id] = found
    contenders: dict[str, list[tuple[int, str]]] = {}
    for directory_id, found in result.items():
        if isinstance(found, Match):
            contenders.setdefault(found.sys_id, []).append((found.rank, directory_id))
    for sys_id, claims in contenders.items():
        best = min(rank for rank, _ in claims)
        winners = sorted(d for rank, d in claims if rank == best)
        for rank, directory_id in claims:
            mine = result[directory_id]
            assert isinstance(mine, Match)
            if rank > best:
                winner = winners[0]
                won = result[winner]
                assert isinstance(won, Match)
                result[directory_id] = Refused(
                    Reason.MATCH_CLAIMED,
                    f"the record matched through {mine.field} is also matched by "
                    f"'{names[winner]}' ({winner}) through {won.field}, which comes first in "
                    "the matching precedence; nothing was written for this object. Make the "
                    f"{mine.field} values differ in the directory or in ServiceNow",
                    sys_id,
                )
            elif len(winners) > 1:
                others = ", ".join(f"'{names[d]}'" for d in winners if d != directory_id)
                result[directory_id] = Refused(
                    Reason.AMBIGUOUS_MATCH,
                    f"{mine.field}='{mine.value}' matches the same ServiceNow record as {others}"
                    "; nothing was written for any of them. Make the value unique in the "
                    "directory",
                    sys_id,
                )
    return result


def _first_match(
    want: Desired, by_field: ByField, claimed: Mapping[str, str]
) -> Match | Refused | None:
    for rank, (name, value) in enumerate(want.matching):
        candidates = by_field.get(name, {}).get(value.strip().lower(), [])
        if len(candidates) > 1:
            return Refused(
                Reason.AMBIGUOUS_MATCH,
                f"{len(candidates)} ServiceNow records have {name}='{value}'; nothing was "
                "written. Make the value unique in ServiceNow",
            )
        if not candidates:
            continue
        sys_id = candidates[0]
        owner = claimed.get(sys_id)
        if owner is not None and owner != want.directory_id:
            return Refused(
                Reason.MATCH_LINKED_ELSEWHERE,
                f"the matching record is already linked to directory object {owner}; "
                "resolve the duplicate in the directory or ServiceNow",
                sys_id,
            )
        return Match(sys_id, rank, name, value)
    return None
