"""Every table's records, indexes and the business rules that run on write."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from snsync.sandbox.encoded_query import (
    Counts,
    EncodedQuery,
    FieldKind,
    Getter,
    compile_query,
    is_true,
    order_records,
)
from snsync.sandbox.servicenow.failure import Failure
from snsync.sandbox.servicenow.roles import (
    GROUP_ROLE,
    MEMBER,
    USER_ROLE,
    Stamp,
    inherit,
    inherited_rows,
)
from snsync.sandbox.servicenow.schema import CASCADE_DELETE, FieldSpec, TableSpec
from snsync.sandbox.servicenow.values import (
    OWN_SYS_ID,
    SYS_ID,
    input_text,
    new_sys_id,
    normalise,
    stored_password,
)


@dataclass(frozen=True)
class WriteContext:
    user_name: str
    now: str
    by_display_value: bool


class Store:
    """Every table's records and the rules that run on write; callers hold the app's lock."""

    def __init__(self, specs: dict[str, TableSpec], rows: dict[str, dict[str, dict[str, str]]]):
        self.specs = specs
        self.rows = rows
        # sys_ids compare without case, as the database does; `_sorted` holds them lower-cased
        # and `_ids` maps each back to the id as stored (an insert may bring its own, any case).
        self._ids = {table: {i.lower(): i for i in records} for table, records in rows.items()}
        self._sorted = {table: sorted(ids) for table, ids in self._ids.items()}
        # Inserted ids not merged into `_sorted` yet: `_order` merges them when an ordered walk
        # needs them, so that a run of inserts does not shift a long list once per insert.
        self._unmerged: dict[str, list[str]] = {table: [] for table in rows}
        # Unique fields are indexed (lower-cased, as the database compares them), so that
        # uniqueness checks and account look-ups stay cheap on large tables.
        self._unique: dict[tuple[str, str], dict[str, str]] = {
            (table, name): {} for table, spec in specs.items() for name in spec.unique
        }
        for table, records in rows.items():
            for record in records.values():
                self._index(table, record)

    def column(self, table: str, path: str) -> FieldSpec | None:
        """The field a (dot-walked) path ends on, or None when a step does not exist."""
        spec = self.specs[table]
        *steps, last = path.split(".")
        for step in steps:
            column = spec.by_name.get(step)
            if column is None or column.kind is not FieldKind.REFERENCE:
                return None
            spec = self.specs[column.reference]
        return spec.by_name.get(last)

    def value_at(self, table: str, record: Mapping[str, str], path: str) -> str:
        """The stored value at a (dot-walked) path; "" past an empty or dangling reference."""
        if "." not in path:
            return record.get(path, "")
        *steps, last = path.split(".")
        for step in steps:
            column = self.specs[table].by_name[step]
            table = column.reference
            found = self.rows[table].get(record.get(step, ""))
            if found is None:
                return ""
            record = found
        return record.get(last, "")

    def display(self, table: str, sys_id: str) -> str:
        """A record's display value; "" for a reference to nothing."""
        record = self.rows[table].get(sys_id)
        return record.get(self.specs[table].display_field, "") if record else ""

    def find_by_display(self, table: str, text: str) -> str:
        """The sys_id of the record a display value names (users also by user_name), or ""."""
        wanted = text.strip().lower()
        if table == "sys_user" and (user := self.find_user(wanted)):
            return user["sys_id"]
        key = self.specs[table].display_field
        for lowered in self._order(table):
            sys_id = self._ids[table][lowered]
            if self.rows[table][sys_id].get(key, "").lower() == wanted:
                return sys_id
        return ""

    def find_user(self, user_name: str) -> dict[str, str] | None:
        """The sys_user row with this user_name, if there is one."""
        sys_id = self._unique[("sys_user", "user_name")].get(user_name.lower(), "")
        return self.rows["sys_user"].get(sys_id)

    def predicate(self, table: str, query: EncodedQuery) -> Callable[[Mapping[str, str]], bool]:
        """A compiled test of whether a record of the table matches the query."""
        return compile_query(query, TableFields(self, table))

    def select(self, table: str, query: EncodedQuery) -> list[dict[str, str]]:
        """The records matching a query, in its order (sys_id order by default)."""
        fields = TableFields(self, table)
        rows = self.rows[table]
        found = [rows[i] for i in self._candidates(table, query)]
        if not _keyset_only(query):  # a keyset condition alone is answered by the candidates
            matching = compile_query(query, fields)
            found = [record for record in found if matching(record)]
        if _in_sys_id_order(query):  # the candidates are in that order already
            return found
        return order_records(found, query, fields)

    def create(
        self, spec: TableSpec, body: Mapping[str, Any], context: WriteContext
    ) -> dict[str, str]:
        """Insert a record from a request body; unknown and read-only fields are ignored."""
        record = {column.name: column.default for column in spec.fields}
        record.update(self._input(spec, body, context.by_display_value))
        sys_id = str(body.get("sys_id") or "")
        duplicate_id = sys_id.lower() in self._ids[spec.name]
        record["sys_id"] = sys_id if OWN_SYS_ID.fullmatch(sys_id) else new_sys_id()
        for name in ("created", "updated"):
            record[f"sys_{name}_on"], record[f"sys_{name}_by"] = context.now, context.user_name
        record["sys_mod_count"] = "0"
        apply_rules(spec, None, record)
        if duplicate_id or self._collides(spec, record):
            raise insert_failure("insert", spec, record)
        self.add(spec.name, record)
        self._grant_inherited(spec.name, record, Stamp(context.user_name, context.now))
        return record

    def update(
        self, spec: TableSpec, sys_id: str, body: Mapping[str, Any], context: WriteContext
    ) -> dict[str, str]:
        """Apply a request body to a record; a write that changes nothing leaves it untouched."""
        before = self.rows[spec.name][sys_id]
        after = {**before, **self._input(spec, body, context.by_display_value)}
        apply_rules(spec, before, after)
        if after == before:
            return before
        if self._collides(spec, after):
            raise insert_failure("update", spec, after)
        after["sys_updated_on"], after["sys_updated_by"] = context.now, context.user_name
        after["sys_mod_count"] = str(int(before.get("sys_mod_count") or 0) + 1)
        self._unindex(spec.name, before)
        self.rows[spec.name][sys_id] = after
        self._index(spec.name, after)
        return after

    def add(self, table: str, record: dict[str, str]) -> None:
        """Store a complete record."""
        self.rows[table][record["sys_id"]] = record
        self._ids[table][record["sys_id"].lower()] = record["sys_id"]
        self._unmerged[table].append(record["sys_id"].lower())
        self._index(table, record)

    def delete(self, table: str, sys_id: str) -> None:
        """Remove a record, then cascade: link rows go with it, other references are cleared."""
        for inherited in self._revoked(table, self.rows[table][sys_id]):
            if inherited in self.rows[USER_ROLE]:
                self.delete(USER_ROLE, inherited)
        self._unindex(table, self.rows[table].pop(sys_id))
        ordered = self._order(table)
        del self._ids[table][sys_id.lower()]
        del ordered[bisect.bisect_left(ordered, sys_id.lower())]
        for spec in self.specs.values():
            for column in spec.fields:
                if column.reference == table:
                    self._cascade(spec, column.name, sys_id)

    def _grant_inherited(self, table: str, record: Mapping[str, str], stamp: Stamp) -> None:
        # A new member gets the group's roles; a role given to a group reaches every member.
        def added(role_table: str, role_row: dict[str, str]) -> None:
            self.add(role_table, role_row)

        if table == MEMBER:
            inherit(self.specs, self.rows, record, stamp, added)
        elif table == GROUP_ROLE:
            for member in list(self.rows[MEMBER].values()):
                if member.get("group") == record.get("group"):
                    inherit(self.specs, self.rows, member, stamp, added)

    def _revoked(self, table: str, record: Mapping[str, str]) -> list[str]:
        # The inherited role rows that go with a membership or with a group's role.
        if table == MEMBER:
            return inherited_rows(self.rows, record)
        if table != GROUP_ROLE:
            return []
        group, role = record.get("group"), record.get("role")
        return [
            r["sys_id"]
            for r in self.rows[USER_ROLE].values()
            if r.get("granted_by") == group
            and r.get("role") == role
            and r.get("inherited") == "true"
        ]

    def _cascade(self, spec: TableSpec, name: str, sys_id: str) -> None:
        for record in [r for r in self.rows[spec.name].values() if r.get(name) == sys_id]:
            if spec.name in CASCADE_DELETE:
                self.delete(spec.name, record["sys_id"])
            else:
                record[name] = ""

    def _input(self, spec: TableSpec, body: Mapping[str, Any], by_display: bool) -> dict[str, str]:
        values: dict[str, str] = {}
        for name, raw in body.items():
            column = spec.by_name.get(name)
            if column is None or column.read_only:
                continue  # unknown fields are ignored silently, as the platform does
            text = input_text(raw)
            if column.dictionary_type == "password":
                values[name] = stored_password(text)
            elif column.kind is FieldKind.REFERENCE:
                values[name] = self._reference_input(column.reference, text, by_display)
            else:
                values[name] = normalise(column.kind, text)
        return values

    def _reference_input(self, table: str, text: str, by_display: bool) -> str:
        text = text.strip()
        if not text or table not in self.specs:
            return ""
        if by_display:
            found = self.find_by_display(table, text)
            return found or (text if text in self.rows[table] else "")
        # A sys_id is stored as given, even one that points nowhere (the platform does too).
        if SYS_ID.fullmatch(text) or text in self.rows[table]:
            return text
        return self.find_by_display(table, text)

    def _collides(self, spec: TableSpec, record: Mapping[str, str]) -> bool:
        for name in spec.unique:
            owner = self._unique[(spec.name, name)].get(record.get(name, "").lower())
            if owner and owner != record["sys_id"]:
                return True
        return False

    def _index(self, table: str, record: Mapping[str, str]) -> None:
        for name in self.specs[table].unique:
            if value := record.get(name, "").lower():
                self._unique[(table, name)][value] = record["sys_id"]

    def _unindex(self, table: str, record: Mapping[str, str]) -> None:
        for name in self.specs[table].unique:
            index = self._unique[(table, name)]
            if index.get(record.get(name, "").lower()) == record["sys_id"]:
                del index[record.get(name, "").lower()]

    def _candidates(self, table: str, query: EncodedQuery) -> list[str]:
        # The sys_ids that can match, in sys_id order: an AND-ed `sys_id=X` or `unique_field=X`
        # is answered from an index, and keyset paging (`sys_id>X`) starts at X, not at the top.
        ids = self._ids[table]
        return [ids[lowered] for lowered in self._candidate_keys(table, query)]

    def _order(self, table: str) -> list[str]:
        """The table's lower-cased sys_ids in order, inserts merged in."""
        ordered, unmerged = self._sorted[table], self._unmerged[table]
        if unmerged:
            ordered += unmerged  # a sorted run and a short tail: the sort merges them
            ordered.sort()
            unmerged.clear()
        return ordered

    def _candidate_keys(self, table: str, query: EncodedQuery) -> list[str]:
        if len(query.segments) != 1:
            return self._order(table)
        start = 0
        for condition, *alternatives in query.segments[0]:
            if alternatives:
                continue
            value = condition.value.lower()
            if condition.operator == "=" and condition.field == "sys_id":
                return [value] if value in self._ids[table] else []
            index = self._unique.get((table, condition.field))
            if condition.operator == "=" and index is not None and value:
                return [index[value].lower()] if value in index else []
            if condition.field == "sys_id" and condition.operator in (">", ">="):
                find = bisect.bisect_right if condition.operator == ">" else bisect.bisect_left
                start = max(start, find(self._order(table), value))
        return self._order(table)[start:]


@dataclass(frozen=True)
class TableFields:
    """The encoded-query `Fields` of one table, dot-walking through references."""

    store: Store
    table: str

    def kind(self, path: str) -> FieldKind | None:
        column = self.store.column(self.table, path)
        return column.kind if column else None

    def getter(self, path: str) -> Getter:
        if "." not in path:
            return lambda record: record.get(path, "")
        return lambda record: self.store.value_at(self.table, record, path)

    def related_counts(self, table: str, field: str, query: EncodedQuery) -> Counts | None:
        """Rows of another table matching the query, counted by their value of `field`."""
        if table not in self.store.specs or self.store.column(table, field) is None:
            return None
        counts: dict[str, int] = {}
        read = TableFields(self.store, table).getter(field)
        for row in self.store.select(table, query):
            key = read(row).lower()
            counts[key] = counts.get(key, 0) + 1
        return counts

    def sort_getter(self, path: str) -> Getter:
        column = self.store.column(self.table, path)
        read = self.getter(path)
        if column is None or column.kind is not FieldKind.REFERENCE:
            return read
        # A reference sorts by the display value of the record it points at.
        return lambda record: self.store.display(column.reference, read(record))


def _keyset_only(query: EncodedQuery) -> bool:
    # `sys_id>X` / `sys_id>=X`, AND-ed, and nothing else: `_candidate_keys` starts past X
    # (lower-cased, as the matcher compares them), so every candidate matches.
    if len(query.segments) != 1:
        return not query.segments
    return all(
        len(clause) == 1 and clause[0].field == "sys_id" and clause[0].operator in (">", ">=")
        for clause in query.segments[0]
    )


def _in_sys_id_order(query: EncodedQuery) -> bool:
    # Records come in sys_id order; ordering by sys_id first (unique) leaves that order, and
    # later terms can only break ties that sys_id never has.
    order = query.order_by
    return not order or (order[0].field == "sys_id" and not order[0].descending)


def apply_rules(spec: TableSpec, before: Mapping[str, str] | None, after: dict[str, str]) -> None:
    """The business rules that run on every write of a table."""
    if spec.name != "sys_user":
        return
    parts = (after.get("first_name", ""), after.get("middle_name", ""), after.get("last_name", ""))
    after["name"] = " ".join(part for part in parts if part)
    active = is_true(after.get("active", "true"))
    if before is None and not active:
        after["locked_out"] = "true"
    elif before is not None and is_true(before.get("active", "true")) != active:
        after["locked_out"] = "false" if active else "true"


def insert_failure(verb: str, spec: TableSpec, record: Mapping[str, str]) -> Failure:
    shown = record.get(spec.display_field, "") or record.get("sys_id", "")
    return Failure(403, "Operation Failed", f"Error during {verb} of {spec.name} ({shown})")
