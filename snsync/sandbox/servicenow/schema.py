"""The built-in tables: their columns, kinds, defaults and the fields kept unique."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from snsync.sandbox.encoded_query import FieldKind


@dataclass(frozen=True)
class FieldSpec:
    """One column of a table."""

    name: str
    kind: FieldKind = FieldKind.STRING
    reference: str = ""  # the referenced table, for references
    default: str = ""
    read_only: bool = False  # set by the instance; ignored in request bodies
    choices: tuple[tuple[str, str], ...] = ()  # (value, label) of a choice field
    internal_type: str = ""  # the dictionary type when it is not the kind's (e.g. password2)

    @property
    def dictionary_type(self) -> str:
        """The field's `internal_type` as sys_dictionary shows it."""
        return self.internal_type or self.kind.value


@dataclass(frozen=True)
class TableSpec:
    """A table: its columns, the field that names a record, and the fields kept unique."""

    name: str
    fields: tuple[FieldSpec, ...]
    display_field: str = "name"
    unique: tuple[str, ...] = ()

    @cached_property
    def by_name(self) -> dict[str, FieldSpec]:
        """The columns by name."""
        return {column.name: column for column in self.fields}


SYSTEM_FIELDS = (
    FieldSpec("sys_id", read_only=True),
    FieldSpec("sys_created_on", FieldKind.DATETIME, read_only=True),
    FieldSpec("sys_created_by", read_only=True),
    FieldSpec("sys_updated_on", FieldKind.DATETIME, read_only=True),
    FieldSpec("sys_updated_by", read_only=True),
    FieldSpec("sys_mod_count", FieldKind.INTEGER, default="0", read_only=True),
)


def text_fields(*names: str) -> tuple[FieldSpec, ...]:
    return tuple(FieldSpec(name) for name in names)


def flag(name: str, default: bool) -> FieldSpec:
    return FieldSpec(name, FieldKind.BOOLEAN, default="true" if default else "false")


def ref(name: str, table: str) -> FieldSpec:
    return FieldSpec(name, FieldKind.REFERENCE, reference=table)


def choice(name: str, kind: FieldKind, default: str, *choices: tuple[str, str]) -> FieldSpec:
    return FieldSpec(name, kind, default=default, choices=choices)


ADDRESS = text_fields("street", "city", "state", "zip", "country")
DATE_FORMATS = ("dd-MM-yyyy", "dd/MM/yyyy", "dd.MM.yyyy", "MM-dd-yyyy", "yyyy-MM-dd")
# Out-of-box sys_user fields that migration schemas commonly map, with the platform's types.
USER_PREFERENCES = (
    choice("notification", FieldKind.INTEGER, "2", ("1", "Disable"), ("2", "Enable")),
    FieldSpec("preferred_language", default=""),
    choice("date_format", FieldKind.STRING, "", ("", "System"), *[(f, f) for f in DATE_FORMATS]),
    ref("cost_center", "cmn_cost_center"),
    ref("building", "cmn_building"),
    choice("calendar_integration", FieldKind.INTEGER, "1", ("0", "None"), ("1", "Outlook")),
    FieldSpec("introduction"),
    flag("enable_multifactor_authn", False),
    ref("schedule", "cmn_schedule"),
    FieldSpec("user_password", internal_type="password"),
)

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec(
            "sys_user",
            (
                *text_fields("user_name", "first_name", "middle_name", "last_name"),
                FieldSpec("name", read_only=True),
                *text_fields("email", "title", "employee_number"),
                flag("active", True),
                flag("locked_out", False),
                ref("department", "cmn_department"),
                ref("manager", "sys_user"),
                ref("location", "cmn_location"),
                ref("company", "core_company"),
                *text_fields("phone", "mobile_phone", "home_phone", *[f.name for f in ADDRESS]),
                *text_fields("source", "time_zone", "gender"),
                *USER_PREFERENCES,
                flag("vip", False),
                flag("web_service_access_only", False),
                flag("internal_integration_user", False),
                flag("password_needs_reset", False),
                FieldSpec("failed_attempts", FieldKind.INTEGER),
                FieldSpec("last_login_time", FieldKind.DATETIME),
                FieldSpec("sys_class_name", default="sys_user", read_only=True),
                *SYSTEM_FIELDS,
            ),
            unique=("user_name",),
        ),
        TableSpec(
            "sys_user_group",
            (
                *text_fields("name", "description", "email", "type", "roles", "source"),
                flag("active", True),
                ref("manager", "sys_user"),
                ref("parent", "sys_user_group"),
                ref("default_assignee", "sys_user"),
                flag("exclude_manager", False),
                flag("include_members", False),
                *SYSTEM_FIELDS,
            ),
        ),
        TableSpec(
            "sys_user_grmember",
            (ref("user", "sys_user"), ref("group", "sys_user_group"), *SYSTEM_FIELDS),
            display_field="sys_id",
        ),
        TableSpec(
            "cmn_department",
            (
                *text_fields("name", "id", "description"),
                ref("dept_head", "sys_user"),
                ref("primary_contact", "sys_user"),
                ref("parent", "cmn_department"),
                ref("company", "core_company"),
                ref("cost_center", "cmn_cost_center"),
                FieldSpec("head_count", FieldKind.INTEGER),
                *SYSTEM_FIELDS,
            ),
        ),
        TableSpec(
            "cmn_cost_center",
            (
                *text_fields("name", "code", "account_number"),
                ref("manager", "sys_user"),
                ref("parent", "cmn_cost_center"),
                ref("location", "cmn_location"),
                FieldSpec("valid_from", FieldKind.DATETIME),
                FieldSpec("valid_to", FieldKind.DATETIME),
                *SYSTEM_FIELDS,
            ),
        ),
        TableSpec(
            "cmn_building",
            (
                FieldSpec("name"),
                FieldSpec("floors", FieldKind.INTEGER),
                ref("location", "cmn_location"),
                ref("contact", "sys_user"),
                *SYSTEM_FIELDS,
            ),
        ),
        TableSpec(
            "cmn_schedule",
            (*text_fields("name", "description", "time_zone", "type"), *SYSTEM_FIELDS),
        ),
        TableSpec(
            "cmn_location",
            (
                *text_fields("name", "full_name", *[f.name for f in ADDRESS], "phone"),
                *text_fields("latitude", "longitude"),
                ref("parent", "cmn_location"),
                ref("company", "core_company"),
                *SYSTEM_FIELDS,
            ),
        ),
        TableSpec(
            "core_company",
            (
                *text_fields("name", *[f.name for f in ADDRESS], "phone", "website"),
                flag("customer", False),
                flag("vendor", False),
                flag("manufacturer", False),
                ref("parent", "core_company"),
                *SYSTEM_FIELDS,
            ),
        ),
        TableSpec(
            "sys_user_role",
            (
                *text_fields("name", "description", "suffix"),
                flag("elevated_privilege", False),
                *SYSTEM_FIELDS,
            ),
            unique=("name",),
        ),
        TableSpec(
            "sys_user_has_role",
            (
                ref("user", "sys_user"),
                ref("role", "sys_user_role"),
                ref("granted_by", "sys_user_group"),
                FieldSpec("state", default="active"),
                flag("inherited", False),
                *SYSTEM_FIELDS,
            ),
            display_field="sys_id",
        ),
        TableSpec(
            "sys_group_has_role",
            (
                ref("group", "sys_user_group"),
                ref("role", "sys_user_role"),
                flag("inherits", True),
                ref("granted_by", "sys_user_group"),
                *SYSTEM_FIELDS,
            ),
            display_field="sys_id",
        ),
        TableSpec(
            "sys_dictionary",
            (
                *text_fields("name", "element", "internal_type", "column_label"),
                *text_fields("reference", "default_value", "max_length"),
                flag("read_only", False),
                flag("active", True),
                *SYSTEM_FIELDS,
            ),
            display_field="element",
        ),
    )
}
GENERATED_TABLES = frozenset({"sys_dictionary"})  # filled from the schema, not by fixtures


def with_columns(spec: TableSpec, columns: tuple[FieldSpec, ...]) -> TableSpec:
    """The table with extra columns (an instance's custom `u_` fields), before the sys_ fields."""
    system = {column.name for column in SYSTEM_FIELDS}
    own = tuple(column for column in spec.fields if column.name not in system)
    rest = tuple(column for column in spec.fields if column.name in system)
    return TableSpec(spec.name, (*own, *columns, *rest), spec.display_field, spec.unique)


def dictionary_rows(specs: dict[str, TableSpec]) -> list[dict[str, str]]:
    """sys_dictionary as an instance has it: one collection entry per table, one per column."""
    rows: list[dict[str, str]] = []
    for spec in specs.values():
        rows.append({"name": spec.name, "element": "", "internal_type": "collection"})
        for column in spec.fields:
            rows.append(
                {
                    "name": spec.name,
                    "element": column.name,
                    "internal_type": column.dictionary_type,
                    "column_label": column.name.replace("_", " ").title(),
                    "reference": column.reference,
                    "default_value": column.default,
                    "max_length": "32" if column.kind is FieldKind.REFERENCE else "40",
                    "read_only": "true" if column.read_only else "false",
                }
            )
    return rows


# Table access per role beyond `admin` (which may do anything): "r" read, "rw" read and write.


# Rows that only tie two records together go when either record goes (the cascade rule
# "delete"); any other reference to a deleted record is cleared.
CASCADE_DELETE = frozenset({"sys_user_grmember", "sys_user_has_role", "sys_group_has_role"})
