"""The ServiceNow SCIM template: SCIM attribute paths -> the Table API fields snsync writes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from snsync.mapping.catalog import ObjectType

_ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:"
_WORK_ADDRESS = 'addresses[type eq "work"].'

USER_FIELDS: Mapping[str, str] = {
    "userName": "user_name",
    "active": "active",
    "name.givenName": "first_name",
    "name.familyName": "last_name",
    "name.middleName": "middle_name",
    'emails[type eq "work"].value': "email",
    "title": "title",
    'phoneNumbers[type eq "work"].value': "phone",
    'phoneNumbers[type eq "mobile"].value': "mobile_phone",
    _WORK_ADDRESS + "streetAddress": "street",
    _WORK_ADDRESS + "locality": "city",
    _WORK_ADDRESS + "region": "state",
    _WORK_ADDRESS + "postalCode": "zip",
    _WORK_ADDRESS + "country": "country",
    "preferredLanguage": "preferred_language",
    "timezone": "time_zone",
    _ENTERPRISE + "employeeNumber": "employee_number",
    _ENTERPRISE + "department": "department",
    _ENTERPRISE + "manager": "manager",
    _ENTERPRISE + "costCenter": "cost_center",
}
"""SCIM user attributes of the template with a sys_user field of the same meaning."""

GROUP_FIELDS: Mapping[str, str] = {"displayName": "name", "description": "description"}
"""SCIM group attributes with a sys_user_group field (members become membership rows)."""

_SCIM_TARGET = re.compile(r"^urn:ietf:params:scim:|\[type eq |^name\.|^userName$")
_SCIM_OBJECTS = {"user": "user", "group": "group"}


def is_scim_rule(rule: Mapping[str, Any]) -> bool:
    """Whether a synchronizationRule targets ServiceNow's SCIM API rather than its tables."""
    names = " ".join(str(rule.get(key) or "") for key in ("id", "name", "targetDirectoryName"))
    if "scim" in names.lower():
        return True
    return any(
        isinstance(m, Mapping) and _SCIM_TARGET.search(str(m.get("targetAttributeName") or ""))
        for om in rule.get("objectMappings") or []
        if isinstance(om, Mapping)
        for m in om.get("attributeMappings") or []
    )


def scim_object(target_object: str) -> ObjectType | None:
    """users or groups for a SCIM targetObjectName (`User`, `urn:...:core:2.0:Group`)."""
    last = target_object.rsplit(":", 1)[-1].strip().lower()
    kind = _SCIM_OBJECTS.get(last)
    return "user" if kind == "user" else "group" if kind == "group" else None


def scim_field(attribute: str, object_type: ObjectType) -> str | None:
    """The Table API field for a SCIM attribute path (None: no field corresponds)."""
    fields = USER_FIELDS if object_type == "user" else GROUP_FIELDS
    folded = {key.lower(): value for key, value in fields.items()}
    return folded.get(re.sub(r"\s+", " ", attribute).lower())
