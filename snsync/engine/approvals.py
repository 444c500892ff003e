"""The trust facts of a cycle, read from the config, ServiceNow's role tables and the state file;
and the admin's approvals of held adoptions (`snsync approve --adoption`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from snsync.config import Config
from snsync.engine.ports import StateStore, TargetReader
from snsync.engine.trust import BUILT_IN_PROTECTED, Roles, Trust, protected_set
from snsync.errors import BadRequestError, ConfigError, SnsyncError
from snsync.model import Reason, Result
from snsync.servicenow import target as target_io
from snsync.state import LogEntry, LogFilter, State

log = logging.getLogger(__name__)


def trust_from_config(config: Config, state: StateStore | None = None) -> Trust:
    """Trust facts known without reading ServiceNow: roles unknown, so adoptions are held."""
    return Trust(
        account=config.servicenow.auth.username,
        protected_users=protected_set(config.safety.protected_users, BUILT_IN_PROTECTED),
        protected_groups=protected_set(config.safety.protected_groups),
        user_roles=None,
        group_roles=None,
        approved=approvals(state) if state is not None else {},
    )


def read_trust(config: Config, client: TargetReader, state: StateStore) -> Trust:
    """This cycle's trust facts: who holds a privileged role (users) or any role (groups)."""
    roles = config.safety.privileged_roles
    users = _roles(
        target_io.USER_ROLE_TABLE,
        lambda: client.role_holders(target_io.USER_ROLE_TABLE, "user", roles),
    )
    groups = _roles(
        target_io.GROUP_ROLE_TABLE,
        lambda: client.role_holders(target_io.GROUP_ROLE_TABLE, "group"),
    )
    base = trust_from_config(config, state)
    return Trust(
        base.account, base.protected_users, base.protected_groups, users, groups, base.approved
    )


def approvals(state: StateStore) -> dict[str, dict[str, str]]:
    """Approved adoptions: object type -> directory id -> the sys_id it may adopt."""
    return state.approved_adoptions()


def approve_adoptions(state: State, objects: Iterable[str]) -> list[LogEntry]:
    """Approve the last held adoption of each object (directory id, name or sys_id); one clear
    error names the first object that has none."""
    approved = approvals(state)
    found: list[LogEntry] = []
    for wanted in objects:
        entry = _last_held(state, wanted)
        if entry is None or not entry.sys_id:
            raise ConfigError(
                f"approve: no held adoption for '{wanted}' in the provisioning log; "
                "`snsync status` lists the held adoptions"
            )
        approved.setdefault(entry.object_type, {})[entry.directory_id] = entry.sys_id
        found.append(entry)
    state.save_approved_adoptions(approved)
    return found


def held_adoptions(state: State) -> list[dict[str, Any]]:
    """The adoptions the last cycle held, for `snsync status`."""
    cycles = state.cycles(1)
    if not cycles:
        return []
    entries = state.log_entries(LogFilter(cycle=cycles[0]["id"], status="Skipped", limit=100000))
    approved = approvals(state)
    return [
        {
            "object_type": e.object_type,
            "directory_id": e.directory_id,
            "display_name": e.display_name,
            "sys_id": e.sys_id,
            "message": e.message,
            "approved": approved.get(e.object_type, {}).get(e.directory_id) == e.sys_id,
        }
        for e in entries
        if e.reason == Reason.ADOPTION_HELD
    ]


def held_results(results: Iterable[Result]) -> list[Result]:
    """The results of a cycle that are held adoptions (for the problem mail)."""
    return [r for r in results if r.reason == Reason.ADOPTION_HELD]


def _last_held(state: State, wanted: str) -> LogEntry | None:
    entries = state.log_entries(LogFilter(user=wanted, status="Skipped", limit=1000))
    held = [e for e in entries if e.reason == Reason.ADOPTION_HELD]
    if not held:
        everything = state.log_entries(LogFilter(status="Skipped", limit=100000))
        held = [e for e in everything if e.reason == Reason.ADOPTION_HELD and e.sys_id == wanted]
    return held[-1] if held else None


def _roles(table: str, read: Callable[[], Roles]) -> Roles | None:
    try:
        return read()
    except BadRequestError as exc:
        if "invalid table" not in str(exc).lower():
            return _unread(table, exc)
        # Every real instance has the role tables; one that has not cannot grant roles by it.
        log.warning("%s does not exist on this instance: no role is held through it", table)
        return {}
    except SnsyncError as exc:
        return _unread(table, exc)


def _unread(table: str, exc: SnsyncError) -> Roles | None:
    # Fail closed: without the roles no adoption of an existing record goes ahead.
    log.warning(
        "could not read %s (%s): every adoption of an existing record is held this cycle",
        table,
        exc,
    )
    return None
