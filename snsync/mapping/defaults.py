"""The default ServiceNow attribute mappings, used when the config gives none."""

from __future__ import annotations

from typing import Any

ACTIVE_EXPRESSION = 'Switch([IsSoftDeleted], , "False", "1", "True", "0")'

DEFAULT_USER_MAPPINGS: list[dict[str, Any]] = [
    {"target": "user_name", "source": "userPrincipalName", "matching": True, "precedence": 1},
    {"target": "active", "expression": ACTIVE_EXPRESSION},
    {"target": "first_name", "source": "givenName"},
    {"target": "last_name", "source": "surname"},
    {"target": "email", "source": "mail"},
    {"target": "title", "source": "jobTitle"},
    {"target": "phone", "source": "telephoneNumber"},
    {"target": "mobile_phone", "source": "mobilePhone"},
    {"target": "department", "source": "department", "reference": "cmn_department"},
    {"target": "employee_number", "source": "employeeId"},
    {"target": "manager", "source": "manager", "reference": "sys_user"},
    {"target": "street", "source": "streetAddress"},
    {"target": "city", "source": "city"},
    {"target": "state", "source": "state"},
    {"target": "zip", "source": "postalCode"},
    {"target": "country", "source": "country"},
]

DEFAULT_GROUP_MAPPINGS: list[dict[str, Any]] = [
    {"target": "name", "source": "displayName", "matching": True, "precedence": 1},
    {"target": "active", "expression": ACTIVE_EXPRESSION},
    {"target": "description", "source": "description"},
    {"target": "email", "source": "mail"},
]
