"""What a mapping or a scoping filter may read from the directory: Microsoft Graph v1.0 user and
group properties, the attributes snsync synthesizes, the provisioning service's own names for
them, and directory extensions; with "did you mean" for everything else."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final, Literal

from snsync.mapping.expressions import attribute_nodes, parse, rename_attributes

ObjectType = Literal["user", "group"]


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


USER_PROPERTIES: Final = _names(
    "id accountEnabled ageGroup assignedLicenses assignedPlans businessPhones city companyName "
    "consentProvidedForMinor country createdDateTime creationType deletedDateTime department "
    "displayName employeeHireDate employeeLeaveDateTime employeeId employeeOrgData employeeType "
    "externalUserState externalUserStateChangeDateTime faxNumber givenName identities imAddresses "
    "isResourceAccount jobTitle lastPasswordChangeDateTime legalAgeGroupClassification mail "
    "mailNickname mobilePhone officeLocation onPremisesDistinguishedName onPremisesDomainName "
    "onPremisesExtensionAttributes onPremisesImmutableId onPremisesLastSyncDateTime "
    "onPremisesSamAccountName onPremisesSecurityIdentifier onPremisesSyncEnabled "
    "onPremisesUserPrincipalName otherMails passwordPolicies postalCode preferredDataLocation "
    "preferredLanguage proxyAddresses securityIdentifier showInAddressList "
    "signInSessionsValidFromDateTime state streetAddress surname usageLocation userPrincipalName "
    "userType"
)
"""Graph v1.0 user properties a `$select` can read (passwordProfile is write-only)."""

GROUP_PROPERTIES: Final = _names(
    "id classification createdDateTime deletedDateTime description displayName expirationDateTime "
    "groupTypes isAssignableToRole mail mailEnabled mailNickname membershipRule "
    "membershipRuleProcessingState onPremisesDomainName onPremisesLastSyncDateTime "
    "onPremisesNetBiosName onPremisesSamAccountName onPremisesSecurityIdentifier "
    "onPremisesSyncEnabled preferredDataLocation preferredLanguage proxyAddresses renewedDateTime "
    "securityEnabled securityIdentifier theme visibility"
)
"""Graph v1.0 group properties a `$select` can read."""

SYNTHESIZED: Final[Mapping[ObjectType, frozenset[str]]] = MappingProxyType(
    {
        "user": frozenset(
            {"IsSoftDeleted", "objectId", "telephoneNumber", "manager", "appRoleAssignments"}
        ),
        "group": frozenset({"IsSoftDeleted", "objectId"}),
    }
)
"""Attributes snsync's directory reading adds to every object (graph/source.py), as the
provisioning service's schema names them."""

PROVISIONING_NAMES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "mobile": "mobilePhone",
        "physicalDeliveryOfficeName": "officeLocation",
        "facsimileTelephoneNumber": "faxNumber",
    }
)
"""The provisioning service's names of user attributes that Graph (and snsync) names otherwise."""

EXTENSION_ATTRIBUTES: Final = frozenset(f"extensionAttribute{n}" for n in range(1, 16))
"""On-premises extension attributes: Graph nests them in onPremisesExtensionAttributes;
snsync's directory reading (engine/directory.py) lifts them to the top, as the provisioning
service's schema names them, for mappings and scoping filters alike."""

# In a scoping filter snsync tests the user as Graph returns it, before any synthesis.
_FILTER_NAMES: Final[Mapping[str, str]] = MappingProxyType(
    {**PROVISIONING_NAMES, "objectId": "id", "telephoneNumber": "businessPhones"}
)
_DIRECTORY_EXTENSION: Final = re.compile(r"extension_[0-9A-Fa-f]{32}_[A-Za-z0-9_]+")


class UnknownAttributeError(ValueError):
    """A name that is not a directory attribute snsync can read; the message says what to do."""

    supported_elsewhere: bool
    """True when the provisioning service knows the name but snsync cannot read it."""

    def __init__(self, message: str, supported_elsewhere: bool = False) -> None:
        super().__init__(message)
        self.supported_elsewhere = supported_elsewhere


def graph_properties(object_type: ObjectType) -> frozenset[str]:
    """The Graph v1.0 properties of users or groups."""
    return USER_PROPERTIES if object_type == "user" else GROUP_PROPERTIES


def mapping_attribute(name: str, object_type: ObjectType = "user") -> str:
    """The attribute snsync reads for `name` in a mapping (`source:` or `[name]` in an
    expression), in its canonical spelling; raises UnknownAttributeError."""
    synthesized = SYNTHESIZED[object_type]
    aliases = PROVISIONING_NAMES if object_type == "user" else {}
    return _resolve(name, object_type, {**{s: s for s in synthesized}, **aliases})


def filter_attribute(name: str) -> str:
    """The Graph user property a scoping-filter clause on `name` tests; raises
    UnknownAttributeError (synthesized attributes such as IsSoftDeleted are not available)."""
    if _fold(name) in {_fold(s) for s in SYNTHESIZED["user"] - _FILTER_NAMES.keys()}:
        raise UnknownAttributeError(
            f"'{name}' is computed by snsync after scoping, so a scoping filter cannot test it; "
            "use a Graph user property"
        )
    return _resolve(name, "user", _FILTER_NAMES)


def known_names(object_type: ObjectType = "user") -> frozenset[str]:
    """Every name a mapping may read (without directory extensions, which are a pattern)."""
    aliases = frozenset(PROVISIONING_NAMES) if object_type == "user" else frozenset()
    extensions = EXTENSION_ATTRIBUTES if object_type == "user" else frozenset()
    return graph_properties(object_type) | SYNTHESIZED[object_type] | aliases | extensions


def expression_attributes(text: str, object_type: ObjectType = "user") -> str:
    """The expression with every `[name]` spelled as snsync reads it; raises
    UnknownAttributeError naming the attribute and its column (the text must parse)."""
    renames: dict[str, str] = {}
    for node in attribute_nodes(parse(text)):
        try:
            renames[node.name] = mapping_attribute(node.name, object_type)
        except UnknownAttributeError as exc:
            raise UnknownAttributeError(
                f"[{node.name}] at col {node.column}: {exc}", exc.supported_elsewhere
            ) from None
    changed = {old: new for old, new in renames.items() if old != new}
    return rename_attributes(text, changed) if changed else text


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to `name` (ignoring case), if any is close enough to be a typo."""
    by_fold = {_fold(c): c for c in sorted(candidates)}
    found = difflib.get_close_matches(_fold(name), list(by_fold), n=1, cutoff=0.75)
    return by_fold[found[0]] if found else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """'; did you mean 'x'?' for a close candidate, else ''."""
    close = suggest(name, candidates)
    return f"; did you mean '{close}'?" if close else ""


def _resolve(name: str, object_type: ObjectType, extra: Mapping[str, str]) -> str:
    folded = _fold(name)
    for alias, target in extra.items():
        if _fold(alias) == folded:
            return target
    for prop in graph_properties(object_type):
        if _fold(prop) == folded:
            return prop
    if object_type == "user" and _DIRECTORY_EXTENSION.fullmatch(name):
        return name
    if object_type == "user":
        for extension in EXTENSION_ATTRIBUTES:
            if _fold(extension) == folded:
                return extension
    candidates = set(graph_properties(object_type)) | set(extra)
    kind = "user" if object_type == "user" else "group"
    raise UnknownAttributeError(
        f"'{name}' is not a directory {kind} attribute{did_you_mean(name, candidates)}"
    )


def _fold(name: str) -> str:
    # Entra attribute names are case-insensitive ([GivenName] reads givenName).
    return name.casefold()


# --- ServiceNow reference tables --------------------------------------------------------------

REFERENCE_TABLES: Final = frozenset(
    {"cmn_department", "cmn_location", "core_company", "cmn_cost_center", "cmn_building",
     "sys_user", "sys_user_group"}
)  # fmt: skip
"""Out-of-box tables a sys_user or sys_user_group reference field points at."""

_CUSTOM_TABLE: Final = re.compile(r"(u|x)_[a-z0-9_]+")


def reference_table(name: str) -> str:
    """`name` if it is a table a reference may resolve against (out-of-box, or a custom `u_` /
    scoped `x_` table, whose existence test-connection checks); raises UnknownAttributeError."""
    if name in REFERENCE_TABLES or _CUSTOM_TABLE.fullmatch(name):
        return name
    raise UnknownAttributeError(
        f"'{name}' is not a ServiceNow table a reference can point at"
        f"{did_you_mean(name, REFERENCE_TABLES)} (known: {', '.join(sorted(REFERENCE_TABLES))}; "
        "custom tables start with u_ or x_)"
    )
