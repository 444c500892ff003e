"""What Graph v1.0 resources look like to a provisioning client: property catalogues, default
$select sets, read-only names, and which application permissions open which operations.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
DEFAULT_ACCESS_ROLE_ID = "00000000-0000-0000-0000-000000000000"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

# Application permissions a fixture client may list (anything else is a typo in the fixture).
KNOWN_PERMISSIONS = frozenset(
    {
        "Application.Read.All",
        "Application.ReadWrite.All",
        "AppRoleAssignment.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
        "Group.Read.All",
        "Group.ReadWrite.All",
        "GroupMember.Read.All",
        "GroupMember.ReadWrite.All",
        "User.Read.All",
        "User.ReadWrite.All",
        "User.DeleteRestore.All",
    }
)


def name_list(text: str) -> tuple[str, ...]:
    """Whitespace-separated names as a tuple (keeps the long catalogues below readable)."""
    return tuple(text.split())


USER_PROPERTIES = name_list(
    "id accountEnabled ageGroup assignedLicenses assignedPlans businessPhones city companyName "
    "consentProvidedForMinor country createdDateTime creationType deletedDateTime department "
    "displayName employeeHireDate employeeLeaveDateTime employeeId employeeOrgData employeeType "
    "externalUserState externalUserStateChangeDateTime faxNumber givenName identities imAddresses "
    "isResourceAccount jobTitle lastPasswordChangeDateTime legalAgeGroupClassification mail "
    "mailNickname mobilePhone officeLocation onPremisesDistinguishedName onPremisesDomainName "
    "onPremisesExtensionAttributes onPremisesImmutableId onPremisesLastSyncDateTime "
    "onPremisesSamAccountName onPremisesSecurityIdentifier onPremisesSyncEnabled "
    "onPremisesUserPrincipalName otherMails passwordPolicies passwordProfile postalCode "
    "preferredDataLocation preferredLanguage proxyAddresses securityIdentifier showInAddressList "
    "signInSessionsValidFromDateTime state streetAddress surname usageLocation userPrincipalName "
    "userType"
)
USER_DEFAULT_SELECT = name_list(
    "businessPhones displayName givenName jobTitle mail mobilePhone officeLocation "
    "preferredLanguage surname userPrincipalName id"
)
USER_READ_ONLY = frozenset(
    name_list(
        "id createdDateTime deletedDateTime securityIdentifier lastPasswordChangeDateTime "
        "signInSessionsValidFromDateTime creationType externalUserStateChangeDateTime "
        "assignedPlans assignedLicenses onPremisesDistinguishedName onPremisesDomainName "
        "onPremisesLastSyncDateTime onPremisesSamAccountName onPremisesSecurityIdentifier "
        "onPremisesSyncEnabled onPremisesUserPrincipalName proxyAddresses "
        "legalAgeGroupClassification isResourceAccount"
    )
)
USER_REQUIRED_ON_CREATE = (
    "accountEnabled",
    "displayName",
    "mailNickname",
    "passwordProfile",
    "userPrincipalName",
)
GROUP_PROPERTIES = name_list(
    "id classification createdDateTime deletedDateTime description displayName expirationDateTime "
    "groupTypes isAssignableToRole mail mailEnabled mailNickname membershipRule "
    "membershipRuleProcessingState onPremisesDomainName onPremisesLastSyncDateTime "
    "onPremisesNetBiosName onPremisesSamAccountName onPremisesSecurityIdentifier "
    "onPremisesSyncEnabled preferredDataLocation preferredLanguage proxyAddresses renewedDateTime "
    "securityEnabled securityIdentifier theme visibility"
)
GROUP_DEFAULT_SELECT = name_list(
    "id deletedDateTime classification createdDateTime description displayName "
    "expirationDateTime groupTypes isAssignableToRole mail mailEnabled mailNickname membershipRule "
    "membershipRuleProcessingState onPremisesSyncEnabled proxyAddresses renewedDateTime "
    "securityEnabled securityIdentifier visibility"
)
GROUP_READ_ONLY = frozenset(
    name_list(
        "id createdDateTime deletedDateTime mail proxyAddresses renewedDateTime securityIdentifier "
        "onPremisesSyncEnabled onPremisesLastSyncDateTime"
    )
)
SP_PROPERTIES = name_list(
    "id deletedDateTime accountEnabled addIns alternativeNames appDescription appDisplayName appId "
    "applicationTemplateId appOwnerOrganizationId appRoleAssignmentRequired appRoles description "
    "disabledByMicrosoftStatus displayName homepage info keyCredentials loginUrl logoutUrl notes "
    "notificationEmailAddresses oauth2PermissionScopes passwordCredentials "
    "preferredSingleSignOnMode preferredTokenSigningKeyThumbprint replyUrls "
    "resourceSpecificApplicationPermissions samlSingleSignOnSettings servicePrincipalNames "
    "servicePrincipalType signInAudience tags tokenEncryptionKeyId verifiedPublisher"
)
ASSIGNMENT_PROPERTIES = name_list(
    "id deletedDateTime appRoleId createdDateTime principalDisplayName principalId principalType "
    "resourceDisplayName resourceId"
)
COLLECTIONS = frozenset(
    name_list(
        "businessPhones otherMails proxyAddresses identities imAddresses assignedLicenses "
        "assignedPlans groupTypes appRoles tags servicePrincipalNames replyUrls keyCredentials "
        "passwordCredentials addIns alternativeNames notificationEmailAddresses "
        "oauth2PermissionScopes resourceSpecificApplicationPermissions"
    )
)

# Which application permissions open which operations (any one of a set is enough).
READ_APPS = frozenset(
    {"Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All"}
    | {"Directory.ReadWrite.All"}
)
READ_ASSIGNMENTS = READ_APPS | {"AppRoleAssignment.ReadWrite.All"}
WRITE_ASSIGNMENTS = frozenset({"AppRoleAssignment.ReadWrite.All"})
READ_USERS = frozenset(
    {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
WRITE_USERS = frozenset({"User.ReadWrite.All", "Directory.ReadWrite.All"})
DELETE_USERS = WRITE_USERS | {"User.DeleteRestore.All"}
READ_GROUPS = frozenset(
    {"Group.Read.All", "Group.ReadWrite.All", "GroupMember.Read.All", "GroupMember.ReadWrite.All"}
    | {"Directory.Read.All", "Directory.ReadWrite.All"}
)
WRITE_MEMBERS = frozenset(
    {"GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"}
)
WRITE_GROUPS = frozenset({"Group.ReadWrite.All", "Directory.ReadWrite.All"})
READ_DIRECTORY_OBJECTS = READ_USERS | READ_GROUPS

USER_TYPE = "#microsoft.graph.user"
GROUP_TYPE = "#microsoft.graph.group"
# Signatures are checked by PyJWT; time, audience and issuer by us (the sandbox has its own clock).
NO_CLAIM_CHECKS: Any = {
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
}
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
MAX_BATCH = 20


def _catalog(*names: Iterable[str]) -> dict[str, str]:
    return {name.lower(): name for group in names for name in group}


USER_CATALOG = _catalog(USER_PROPERTIES)
USER_DELTA_CATALOG = _catalog(USER_PROPERTIES, ["manager"])
GROUP_CATALOG = _catalog(GROUP_PROPERTIES)
GROUP_DELTA_CATALOG = _catalog(GROUP_PROPERTIES, ["members"])
SP_CATALOG = _catalog(SP_PROPERTIES)
ASSIGNMENT_CATALOG = _catalog(ASSIGNMENT_PROPERTIES)
DIRECTORY_OBJECT_CATALOG = _catalog(USER_PROPERTIES, GROUP_PROPERTIES)
USER_NAMES = frozenset(USER_PROPERTIES)
GROUP_NAMES = frozenset(GROUP_PROPERTIES)

# users/delta as clients write it; the SDKs use the fully qualified function name.
DELTA_SEGMENTS = frozenset({"delta", "delta()", "microsoft.graph.delta", "microsoft.graph.delta()"})
# Members one POST or PATCH of a group may add through members@odata.bind.
MAX_MEMBER_BINDS = 20
