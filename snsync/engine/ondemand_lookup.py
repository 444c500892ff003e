"""Which directory object `snsync provision REF` means. A userPrincipalName (it has an `@`) is a
user; an object id is whichever object it is, a user or a group; anything else is a group's
display name, which must name exactly one group. `--group` looks REF up as a group only."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from snsync.config import Config
from snsync.engine.ports import Directory
from snsync.engine.reading import source_attributes
from snsync.errors import ConfigError, NotFoundError
from snsync.model import ObjectType

OBJECT_ID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
LISTED = 10  # candidates named in the error line when a display name is ambiguous


@dataclass(frozen=True)
class Found:
    """The directory object REF names, as Graph returned it."""

    kind: ObjectType  # USER or GROUP
    raw: Mapping[str, Any]


def resolve(directory: Directory, config: Config, ref: str, *, group: bool = False) -> Found:
    """The user or group `ref` names; a ConfigError (exit 2) naming what was tried when none,
    or listing the candidates when a display name names several groups."""
    ref = ref.strip()
    if not ref:
        raise ConfigError(
            "provision needs a user (userPrincipalName or object id) or a group (display name "
            "or object id)"
        )
    if OBJECT_ID.fullmatch(ref):
        return _by_id(directory, config, ref, group)
    if "@" in ref and not group:
        try:
            return Found(ObjectType.USER, directory.user(ref, source_attributes(config)))
        except NotFoundError as exc:  # the admin named someone who is not there: usage, exit 2
            raise ConfigError(str(exc)) from None
    return Found(ObjectType.GROUP, _by_name(directory, config, ref))


def member_user(
    directory: Directory, config: Config, ref: str, members: Sequence[str], group_name: str
) -> Mapping[str, Any]:
    """A member chosen with --member (userPrincipalName or object id), read from the directory;
    exit 2 when there is no such user or the user is not a member of the group."""
    try:
        raw = directory.user(ref.strip(), source_attributes(config))
    except NotFoundError as exc:
        raise ConfigError(f"--member {ref}: {exc}") from None
    if str(raw.get("id")) not in members:
        relation = "member" if config.scope.expand_nested_groups else "direct member"
        raise ConfigError(
            f"--member {ref}: {raw.get('userPrincipalName') or ref} is not a {relation} of "
            f"group '{group_name}'"
        )
    return raw


def _by_id(directory: Directory, config: Config, ref: str, group: bool) -> Found:
    # Two reads with the permissions a cycle needs (directoryObjects/{id} needs
    # Directory.Read.All): a user first, then a group.
    if not group:
        try:
            return Found(ObjectType.USER, directory.user(ref, source_attributes(config)))
        except NotFoundError:
            pass
    try:
        return Found(ObjectType.GROUP, directory.group(ref, source_attributes(config, "group")))
    except NotFoundError:
        what = "group" if group else "user or group"
        raise ConfigError(f"no directory {what} with object id '{ref}'") from None


def _by_name(directory: Directory, config: Config, name: str) -> Mapping[str, Any]:
    found = directory.groups_named(name, source_attributes(config, "group"))
    if not found:
        raise ConfigError(
            f"no directory group named '{name}' (the whole display name, any case); for a user "
            "give the userPrincipalName, or give an object id"
        )
    if len(found) > 1:
        listed = "; ".join(f"{g.get('id')} ({g.get('displayName')})" for g in found[:LISTED])
        more = f"; and {len(found) - LISTED} more" if len(found) > LISTED else ""
        raise ConfigError(
            f"'{name}' names {len(found)} directory groups: {listed}{more}; give the object id "
            "of the one to provision"
        )
    return found[0]
