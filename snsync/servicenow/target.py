"""Read the target side of a cycle from ServiceNow: sys_user once, in pages, and the reference
tables that mappings resolve display values against."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

from snsync.errors import ConfigError
from snsync.model import GROUP_TABLE, MEMBER_TABLE, USER_TABLE, Progress, Record, TargetSnapshot
from snsync.servicenow.batch import OnWrite, Stop, WriteRequest, WriteResult, write_batched
from snsync.servicenow.batchread import Changed, TableRead, read_together
from snsync.servicenow.client import TableClient

ROLE_TABLE = "sys_user_role"
USER_ROLE_TABLE = "sys_user_has_role"  # holder field "user"; inherited grants have rows too
GROUP_ROLE_TABLE = "sys_group_has_role"  # holder field "group"
IN_CHUNK = 100  # sys_ids per IN query: keeps URLs well under instance limits
DISPLAY_FIELD = {"sys_user": "user_name"}


def read_users(
    client: TableClient, fields: Sequence[str], progress: Progress | None = None
) -> dict[str, Record]:
    """Every sys_user record with the mapped fields, keyed by sys_id."""
    users: dict[str, Record] = {}
    for page in client.iter_pages(USER_TABLE, fields):
        for row in page:
            users[row["sys_id"]] = row
        if progress:
            progress("servicenow users", len(page))
    check_fields(USER_TABLE, fields, users.values())
    return users


def read_groups(client: TableClient, fields: Sequence[str]) -> dict[str, Record]:
    """Every sys_user_group record with the mapped fields, keyed by sys_id."""
    groups: dict[str, Record] = {r["sys_id"]: r for r in client.read_all(GROUP_TABLE, fields)}
    check_fields(GROUP_TABLE, fields, groups.values())
    return groups


def read_memberships(client: TableClient, group_sys_ids: Iterable[str]) -> list[Record]:
    """The sys_user_grmember rows of the given groups, read in pages, a chunk of groups a query."""
    ids = sorted(set(group_sys_ids))
    rows: list[Record] = []
    for start in range(0, len(ids), IN_CHUNK):
        query = "groupIN" + ",".join(ids[start : start + IN_CHUNK])
        rows.extend(client.read_all(MEMBER_TABLE, ["user", "group", "sys_created_by"], query))
    return rows


def read_role_holders(
    client: TableClient, table: str, holder: str, role_names: Collection[str] | None = None
) -> dict[str, tuple[str, ...]]:
    """sys_id of each user (sys_user_has_role, holder "user") or group (sys_group_has_role,
    holder "group") that holds one of `role_names`, or any role when None -> the roles' names."""
    names = {r["sys_id"]: r.get("name", "") for r in client.read_all(ROLE_TABLE, ["name"])}
    queries: list[str | None] = [None]
    if role_names is not None:
        wanted = {n.strip().lower() for n in role_names}
        ids = sorted(s for s, n in names.items() if n.strip().lower() in wanted)
        chunks = [ids[i : i + IN_CHUNK] for i in range(0, len(ids), IN_CHUNK)]
        queries = ["roleIN" + ",".join(chunk) for chunk in chunks]
    held: dict[str, set[str]] = {}
    for query in queries:
        for row in client.read_all(table, [holder, "role"], query or ""):
            if row.get(holder):
                held.setdefault(row[holder], set()).add(names.get(row.get("role", ""), "?"))
    return {sys_id: tuple(sorted(roles)) for sys_id, roles in held.items()}


def read_references(client: TableClient, tables: Iterable[str]) -> dict[str, dict[str, str]]:
    """For each reference table: display value (lower-cased) -> sys_id."""
    result: dict[str, dict[str, str]] = {}
    for table in sorted(set(tables) - {USER_TABLE}):
        field = DISPLAY_FIELD.get(table, "name")
        lookup: dict[str, str] = {}
        for row in client.read_all(table, [field]):
            key = row.get(field, "").strip().lower()
            if key:
                lookup.setdefault(key, row["sys_id"])
        result[table] = lookup
    return result


def read_target(
    client: TableClient,
    fields: Sequence[str],
    reference_tables: Iterable[str],
    group_fields: Sequence[str] = (),
    progress: Progress | None = None,
) -> TargetSnapshot:
    """The ServiceNow side of a cycle: users, groups (when group fields are given), references."""
    users = read_users(client, fields, progress)
    groups = read_groups(client, group_fields) if group_fields else {}
    return TargetSnapshot(users, read_references(client, reference_tables), groups)


def check_fields(table: str, fields: Sequence[str], records: Iterable[Record]) -> None:
    """ServiceNow silently drops unknown fields, so a mistyped mapping target would be 'changed'
    every cycle: refuse to go on when no record carries a mapped field."""
    sample = next(iter(records), None)
    if sample is None:
        return
    missing = [f for f in fields if f not in sample]
    if missing:
        raise ConfigError(
            f"mapping target '{missing[0]}' is not a field of {table} (ServiceNow does not return "
            "it); fix the target name in the mappings"
        )


class ServiceNowTarget:
    """The target port of the engine (snsync.engine.ports.Target) over a TableClient."""

    def __init__(self, client: TableClient) -> None:
        self.client = client

    def users(self, fields: Sequence[str], progress: Progress | None = None) -> dict[str, Record]:
        return read_users(self.client, fields, progress)

    def groups(self, fields: Sequence[str]) -> dict[str, Record]:
        return read_groups(self.client, fields)

    def memberships(self, group_sys_ids: Iterable[str]) -> list[Record]:
        return read_memberships(self.client, group_sys_ids)

    def references(self, tables: Iterable[str]) -> dict[str, dict[str, str]]:
        return read_references(self.client, tables)

    def changes_since(self, reads: Sequence[Changed], since: str) -> list[list[Record]]:
        """Several drift reads at once: their first pages in one Batch API request
        (servicenow/batchread.py), in the reads' order."""
        table_reads = [TableRead(r.table, r.fields, r.query(since)) for r in reads]
        return read_together(self.client, table_reads)

    def find(self, table: str, fields: Sequence[str], field: str, value: str) -> Sequence[Record]:
        """Records whose `field` equals `value` exactly (`^` escaped)."""
        return self.client.read_all(table, fields, f"{field}={value.replace('^', '^^')}")

    def get(self, table: str, sys_id: str, fields: Sequence[str] = ()) -> Record:
        return self.client.get(table, sys_id, fields)

    def role_holders(
        self, table: str, holder: str, role_names: Collection[str] | None = None
    ) -> dict[str, tuple[str, ...]]:
        return read_role_holders(self.client, table, holder, role_names)

    def create(self, table: str, values: Mapping[str, str]) -> Record:
        return self.client.create(table, values)

    def update(self, table: str, sys_id: str, values: Mapping[str, str]) -> Record:
        return self.client.update(table, sys_id, values)

    def delete(self, table: str, sys_id: str) -> None:
        self.client.delete(table, sys_id)

    def write_batch(
        self,
        requests: Sequence[WriteRequest],
        *,
        batch_size: int,
        concurrency: int,
        on_result: OnWrite | None = None,
        stop: Stop | None = None,
    ) -> list[WriteResult]:
        """Many writes through the Batch API (snsync.servicenow.batch.write_batched)."""
        return write_batched(
            self.client,
            requests,
            batch_size=batch_size,
            concurrency=concurrency,
            on_result=on_result,
            stop=stop,
        )
