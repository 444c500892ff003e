"""Instance fixtures: read, checked, turned into accounts, OAuth clients and stored records."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from snsync.errors import FixtureError
from snsync.sandbox.encoded_query import FieldKind, parse
from snsync.sandbox.servicenow.acl import Account, ReadRule
from snsync.sandbox.servicenow.roles import Stamp, grant_fixture_roles
from snsync.sandbox.servicenow.schema import (
    GENERATED_TABLES,
    SYSTEM_FIELDS,
    TABLES,
    FieldSpec,
    TableSpec,
    dictionary_rows,
    with_columns,
)
from snsync.sandbox.servicenow.store import apply_rules
from snsync.sandbox.servicenow.tokens import OAuthClient
from snsync.sandbox.servicenow.values import (
    SYS_ID,
    datetime_text,
    input_text,
    new_sys_id,
    normalise,
    stored_password,
)


def load_instance_file(path: Path) -> dict[str, Any]:
    """Read an instance fixture from a JSON file; FixtureError names the file and the spot."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise FixtureError(f"instance fixture {path}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise FixtureError(f"instance fixture {path}: not UTF-8 text") from None
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as error:
        raise FixtureError(
            f"instance fixture {path}: invalid JSON at line {error.lineno} column {error.colno}: "
            f"{error.msg}"
        ) from None
    if not isinstance(loaded, dict):
        raise FixtureError(f"instance fixture {path}: must be a JSON object")
    return loaded


TABLE_NAME = re.compile(r"[a-z][a-z0-9_]*")
FIXTURE_KEYS = ("accounts", "oauth_clients", "tables", "columns", "read_rules")
COLUMN_KINDS = {kind.value: kind for kind in FieldKind}
DEFAULT_CREATOR = "admin"  # sys_created_by of fixture records that do not name their creator
ROLE_HOLDERS = ("sys_user", "sys_user_group")


@dataclass(frozen=True)
class Instance:
    accounts: dict[str, Account]
    clients: dict[str, OAuthClient]
    specs: dict[str, TableSpec]
    rows: dict[str, dict[str, dict[str, str]]]
    read_rules: tuple[ReadRule, ...] = ()


def load_instance(instance: Mapping[str, Any], now: str) -> Instance:
    if not isinstance(instance, Mapping):
        fixture_error("", "must be a JSON object")
    unknown = sorted(set(instance) - set(FIXTURE_KEYS))
    if unknown:
        fixture_error(unknown[0], f"unknown key (expected {', '.join(FIXTURE_KEYS)})")
    accounts = load_accounts(instance.get("accounts", []))
    clients = load_clients(instance.get("oauth_clients", []), accounts)
    tables = instance.get("tables", {})
    if not isinstance(tables, Mapping):
        fixture_error("tables", "must be an object of table name to list of records")
    specs = dict(TABLES)
    for name, records in tables.items():
        if not TABLE_NAME.fullmatch(str(name)):
            fixture_error(f"tables.{name}", "table names are lowercase letters, digits and _")
        if not isinstance(records, list):
            fixture_error(f"tables.{name}", "must be a list of records")
        if name in GENERATED_TABLES:
            fixture_error(f"tables.{name}", "generated from the tables (declare fields in columns)")
        if name not in specs:
            specs[name] = custom_table(name, records)
    for name, columns in load_columns(instance.get("columns", {}), specs).items():
        specs[name] = with_columns(specs[name], columns)
    rows = RecordLoader(specs, now).load(tables, accounts)
    rows["sys_dictionary"] = {}
    for entry in dictionary_rows(specs):
        record = {column.name: column.default for column in specs["sys_dictionary"].fields}
        record.update(entry, sys_id=new_sys_id(), sys_created_on=now, sys_updated_on=now)
        record.update(sys_created_by=DEFAULT_CREATOR, sys_updated_by=DEFAULT_CREATOR)
        rows["sys_dictionary"][record["sys_id"]] = record
    rules = load_read_rules(instance.get("read_rules", []), specs, accounts)
    return Instance(accounts, clients, specs, rows, rules)


def load_read_rules(
    raw: Any, specs: Mapping[str, TableSpec], accounts: Mapping[str, Account]
) -> tuple[ReadRule, ...]:
    """The fixture's `read_rules`: [{"table", "condition", "accounts"?}]."""
    if not isinstance(raw, list):
        fixture_error("read_rules", "must be a list of {table, condition}")
    rules: list[ReadRule] = []
    for index, entry in enumerate(raw):
        path = f"read_rules[{index}]"
        table = required_text(entry, path, "table")
        if table not in specs:
            fixture_error(f"{path}.table", f"no table {table!r}")
        condition = entry.get("condition")
        if not isinstance(condition, str):
            fixture_error(f"{path}.condition", "must be an encoded query string")
        names = entry.get("accounts")
        if names is not None and (
            not isinstance(names, list) or not all(n in accounts for n in names)
        ):
            fixture_error(f"{path}.accounts", "must be a list of account user_names")
        chosen = frozenset(names) if names is not None else None
        rules.append(ReadRule(table, condition, parse(condition), chosen))
    return tuple(rules)


def fixture_error(path: str, problem: str) -> NoReturn:
    where = f"{path}: " if path else ""
    raise FixtureError(f"instance fixture: {where}{problem}")


def load_accounts(raw: Any) -> dict[str, Account]:
    if not isinstance(raw, list):
        fixture_error("accounts", "must be a list")
    accounts: dict[str, Account] = {}
    for index, entry in enumerate(raw):
        path = f"accounts[{index}]"
        user_name = required_text(entry, path, "user_name")
        password = required_text(entry, path, "password")
        roles = entry.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
            fixture_error(f"{path}.roles", "must be a list of role names")
        if user_name in accounts:
            fixture_error(f"{path}.user_name", f"duplicate account {user_name!r}")
        accounts[user_name] = Account(user_name, password, frozenset(roles))
    return accounts


def load_clients(raw: Any, accounts: Mapping[str, Account]) -> dict[str, OAuthClient]:
    if not isinstance(raw, list):
        fixture_error("oauth_clients", "must be a list")
    clients: dict[str, OAuthClient] = {}
    for index, entry in enumerate(raw):
        path = f"oauth_clients[{index}]"
        client_id = required_text(entry, path, "client_id")
        secret = required_text(entry, path, "client_secret")
        user_name = entry.get("user_name", "")
        if user_name and user_name not in accounts:
            fixture_error(f"{path}.user_name", f"no account named {user_name!r}")
        if client_id in clients:
            fixture_error(f"{path}.client_id", f"duplicate client {client_id!r}")
        clients[client_id] = OAuthClient(client_id, secret, str(user_name))
    return clients


def required_text(entry: Any, path: str, key: str) -> str:
    if not isinstance(entry, Mapping):
        fixture_error(path, "must be an object")
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        fixture_error(f"{path}.{key}", "must be a non-empty string")
    return value


def load_columns(raw: Any, specs: Mapping[str, TableSpec]) -> dict[str, tuple[FieldSpec, ...]]:
    """The fixture's `columns`: table -> extra fields, each a name (a string field) or
    {"name", "type", "reference"}."""
    if not isinstance(raw, Mapping):
        fixture_error("columns", "must be an object of table name to list of field names")
    declared: dict[str, tuple[FieldSpec, ...]] = {}
    for table, entries in raw.items():
        path = f"columns.{table}"
        if table not in specs or table in GENERATED_TABLES:
            fixture_error(path, "no such table (declare it under tables)")
        if not isinstance(entries, list):
            fixture_error(path, "must be a list of field names")
        fields = [_column(f"{path}[{i}]", entry, specs) for i, entry in enumerate(entries)]
        names = [column.name for column in fields]
        for index, name in enumerate(names):
            if name in specs[table].by_name or name in names[:index]:
                fixture_error(f"{path}[{index}]", f"{table} already has a field {name!r}")
        declared[table] = tuple(fields)
    return declared


def _column(path: str, entry: Any, specs: Mapping[str, TableSpec]) -> FieldSpec:
    given = {"name": entry} if isinstance(entry, str) else entry
    if not isinstance(given, Mapping) or not isinstance(given.get("name"), str):
        fixture_error(path, "must be a field name or {name, type, reference}")
    name, kind_name = given["name"], given.get("type", "string")
    if not TABLE_NAME.fullmatch(name):
        fixture_error(path, "field names are lowercase letters, digits and _")
    kind = COLUMN_KINDS.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None:
        fixture_error(f"{path}.type", f"must be one of {', '.join(COLUMN_KINDS)}")
    reference = given.get("reference", "")
    if (kind is FieldKind.REFERENCE) != bool(reference) or (reference and reference not in specs):
        fixture_error(f"{path}.reference", "a reference names an existing table (and only then)")
    default = "false" if kind is FieldKind.BOOLEAN else ""
    return FieldSpec(name, kind, reference=str(reference), default=default)


def custom_table(name: str, records: list[Any]) -> TableSpec:
    names: dict[str, None] = {}
    for record in records:
        if isinstance(record, Mapping):
            names.update(dict.fromkeys(str(key) for key in record))
    system = {column.name for column in SYSTEM_FIELDS}
    columns = tuple(FieldSpec(key) for key in names if key not in system)
    display = "name" if "name" in names else "sys_id"
    return TableSpec(name, (*columns, *SYSTEM_FIELDS), display_field=display)


class RecordLoader:
    """Turns fixture tables into stored records: validated, completed, references resolved."""

    def __init__(self, specs: dict[str, TableSpec], now: str) -> None:
        self.specs = specs
        self.now = now
        self.rows: dict[str, dict[str, dict[str, str]]] = {name: {} for name in specs}
        self.paths: dict[tuple[str, str], str] = {}
        self.roles: dict[str, dict[str, list[str]]] = {"sys_user": {}, "sys_user_group": {}}
        self._display: dict[str, list[dict[str, str]]] = {}

    def load(
        self, tables: Mapping[str, list[Any]], accounts: Mapping[str, Account]
    ) -> dict[str, dict[str, dict[str, str]]]:
        """The stored records of every table, role rows included."""
        for name, given in tables.items():
            for index, raw in enumerate(given):
                self._add(self.specs[name], f"tables.{name}[{index}]", raw)
        self._add_account_users(accounts)
        self._add_named_roles(accounts)
        for name, stored in self.rows.items():
            for record in stored.values():
                self._resolve(self.specs[name], record)
            self._check_unique(self.specs[name], stored)
        users = {r["user_name"].lower(): i for i, r in self.rows["sys_user"].items()}
        user_roles = self.roles["sys_user"]
        for account in accounts.values():
            user_roles.setdefault(users[account.user_name.lower()], []).extend(account.roles)
        stamp = Stamp(DEFAULT_CREATOR, self.now)
        grant_fixture_roles(self.specs, self.rows, user_roles, self.roles["sys_user_group"], stamp)
        return self.rows

    def _add_named_roles(self, accounts: Mapping[str, Account]) -> None:
        # A role named by an account, user or group exists as a sys_user_role row.
        present = {r["name"].lower() for r in self.rows["sys_user_role"].values()}
        named = [name for a in accounts.values() for name in sorted(a.roles)]
        named += [name for held in self.roles.values() for names in held.values() for name in names]
        for name in named:
            if name.lower() not in present:
                present.add(name.lower())
                self._add(self.specs["sys_user_role"], f"roles.{name}", {"name": name})

    def _add_account_users(self, accounts: Mapping[str, Account]) -> None:
        # Every account is a sys_user row on an instance: one the fixture leaves out gets a row.
        present = {r["user_name"].lower() for r in self.rows["sys_user"].values()}
        for index, account in enumerate(accounts.values()):
            if account.user_name.lower() not in present:
                path = f"accounts[{index}]"
                self._add(self.specs["sys_user"], path, {"user_name": account.user_name})

    def _add(self, spec: TableSpec, path: str, raw: Any) -> None:
        if not isinstance(raw, Mapping):
            fixture_error(path, "must be an object")
        raw, roles = _split_roles(spec, path, raw)
        record = {column.name: column.default for column in spec.fields}
        for key, value in raw.items():
            record[key] = self._value(spec, f"{path}.{key}", key, value)
        sys_id = record["sys_id"] or new_sys_id()
        if not SYS_ID.fullmatch(sys_id):
            fixture_error(f"{path}.sys_id", "must be 32 lowercase hex characters")
        if sys_id in self.rows[spec.name]:
            fixture_error(f"{path}.sys_id", f"duplicate sys_id {sys_id}")
        record["sys_id"] = sys_id
        record["sys_created_on"] = record["sys_created_on"] or self.now
        record["sys_updated_on"] = record["sys_updated_on"] or record["sys_created_on"]
        record["sys_created_by"] = record["sys_created_by"] or DEFAULT_CREATOR
        record["sys_updated_by"] = record["sys_updated_by"] or record["sys_created_by"]
        record["sys_mod_count"] = record["sys_mod_count"] or "0"
        given = dict(record)
        apply_rules(spec, None, record)
        if spec.name == "sys_user" and "name" in raw and given["name"] != record["name"]:
            fixture_error(f"{path}.name", "calculated from first_name, middle_name, last_name")
        if "locked_out" in raw:
            record["locked_out"] = given["locked_out"]  # as the fixture says, not as a rule would
        self.rows[spec.name][sys_id] = record
        self.paths[(spec.name, sys_id)] = path
        if roles:
            self.roles[spec.name][sys_id] = roles

    def _value(self, spec: TableSpec, path: str, key: str, value: Any) -> str:
        column = spec.by_name.get(key)
        if column is None:
            fixture_error(path, f"{spec.name} has no such field")
        if isinstance(value, dict | list):
            fixture_error(path, "must be a string, number, boolean or null")
        text = input_text(value)
        if column.kind is FieldKind.BOOLEAN and text.strip().lower() not in (
            "true",
            "false",
            "1",
            "0",
        ):
            fixture_error(path, "must be true or false")
        if column.kind is FieldKind.INTEGER and text and not text.lstrip("-").isdigit():
            fixture_error(path, "must be an integer")
        if column.kind is FieldKind.DATETIME and datetime_text(text) is None:
            fixture_error(path, "must be a date-time 'YYYY-MM-DD HH:MM:SS' (UTC)")
        if column.kind is FieldKind.REFERENCE:
            return text.strip()
        if column.dictionary_type == "password":
            return stored_password(text)
        return text if key == "sys_id" else normalise(column.kind, text)

    def _resolve(self, spec: TableSpec, record: dict[str, str]) -> None:
        # Fixtures may name a referenced record by sys_id or by display value (users also by
        # user_name); unlike the API, a fixture that names nothing is an error, not an empty field.
        for column in spec.fields:
            text = record[column.name]
            if column.kind is not FieldKind.REFERENCE or not text:
                continue
            target = self.rows.get(column.reference, {})
            if text in target:
                continue
            found = self._by_display(column.reference, text)
            if not found:
                where = f"{self.paths[(spec.name, record['sys_id'])]}.{column.name}"
                fixture_error(where, f"no {column.reference} record with sys_id or name {text!r}")
            record[column.name] = found

    def _by_display(self, table: str, text: str) -> str:
        wanted = text.lower()
        return next((i[wanted] for i in self._display_indexes(table) if wanted in i), "")

    def _display_indexes(self, table: str) -> list[dict[str, str]]:
        # Built once per table after every record is in, so large fixtures resolve in linear time;
        # the first record with a given name wins, as it does in the API's look-up.
        if table not in self._display:
            spec = self.specs[table]
            keys = ("user_name", "name") if table == "sys_user" else (spec.display_field,)
            indexes: list[dict[str, str]] = []
            for key in keys:
                index: dict[str, str] = {}
                for sys_id, record in self.rows[table].items():
                    index.setdefault(record.get(key, "").lower(), sys_id)
                indexes.append(index)
            self._display[table] = indexes
        return self._display[table]

    def _check_unique(self, spec: TableSpec, records: Mapping[str, dict[str, str]]) -> None:
        for name in spec.unique:
            seen: set[str] = set()
            for sys_id, record in records.items():
                value = record.get(name, "").lower()
                if value and value in seen:
                    path = self.paths[(spec.name, sys_id)]
                    fixture_error(f"{path}.{name}", f"duplicate {name} {record[name]!r}")
                seen.add(value)


def _split_roles(
    spec: TableSpec, path: str, raw: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """A user's or group's fixture `roles` (a list, or for groups also a comma list) taken out of
    the record: they become role rows, not a stored value."""
    record = dict(raw)
    if spec.name not in ROLE_HOLDERS or "roles" not in record:
        return record, []
    given = record.pop("roles")
    names = given.split(",") if isinstance(given, str) and spec.name != "sys_user" else given
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        fixture_error(f"{path}.roles", "must be a list of role names")
    return record, [n.strip() for n in names if n.strip()]
