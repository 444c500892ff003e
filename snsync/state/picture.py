"""The cached picture's layout in the state file: one JSON document per kind (one parse of a
large document is far cheaper than thousands of small ones). Only this module knows it."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from snsync.model import CachedPicture, SourceCache, TargetSnapshot

# The directory ids of the cached users with a userPrincipalName (`snsync logs --user UPN`).
USERS_BY_UPN = (
    "SELECT j.key FROM cache, json_each(cache.value) AS j WHERE cache.kind='src_user' AND "
    "lower(json_extract(j.value, '$.userPrincipalName'))=lower(?)"
)
_REF_SEPARATOR = "\x00"


def has_picture(db: sqlite3.Connection) -> bool:
    """Whether a picture is cached, without loading it."""
    row = db.execute("SELECT 1 FROM cache WHERE kind='src_user' AND key=''").fetchone()
    return row is not None


def load_picture(db: sqlite3.Connection) -> CachedPicture:
    """The picture the last cycle saved (empty kinds when there is none)."""
    kinds = {
        kind: json.loads(value)
        for kind, value in db.execute("SELECT kind, value FROM cache WHERE key=''")
    }
    references: dict[str, dict[str, str]] = {}
    for key, sys_id in kinds.get("ref", {}).items():
        table, name = key.split(_REF_SEPARATOR, 1)
        references.setdefault(table, {})[name] = sys_id
    directory = SourceCache(
        kinds.get("src_user", {}),
        kinds.get("src_group", {}),
        {k: tuple(v) for k, v in kinds.get("src_members", {}).items()},
    )
    target = TargetSnapshot(
        kinds.get("tgt_user", {}),
        references,
        kinds.get("tgt_group", {}),
        kinds.get("tgt_member", {}),
        frozenset(kinds.get("tgt_member_groups", {})),
    )
    return CachedPicture(directory, target)


def save_picture(db: sqlite3.Connection, picture: CachedPicture) -> None:
    """Replace the cached picture (inside the caller's transaction)."""
    target = picture.target
    kinds: dict[str, Any] = {
        "src_user": picture.directory.users,
        "src_group": picture.directory.groups,
        "src_members": {k: list(v) for k, v in picture.directory.members.items()},
        "tgt_user": dict(target.users),
        "tgt_group": dict(target.groups),
        "tgt_member": dict(target.memberships),
        "tgt_member_groups": dict.fromkeys(sorted(target.member_groups), 1),
        "ref": {
            f"{table}{_REF_SEPARATOR}{name}": sys_id
            for table, names in target.references.items()
            for name, sys_id in names.items()
        },
    }
    for kind, entries in kinds.items():
        db.execute(
            "INSERT INTO cache (kind, key, value) VALUES (?, '', ?) ON CONFLICT (kind, key)"
            " DO UPDATE SET value=excluded.value",
            (kind, json.dumps(entries, separators=(",", ":"))),
        )
