"""How a response shows records: sysparm_display_value, reference links, sysparm_fields, Link."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from snsync.sandbox.encoded_query import FieldKind
from snsync.sandbox.server import Request
from snsync.sandbox.servicenow.schema import FieldSpec, TableSpec
from snsync.sandbox.servicenow.store import Store
from snsync.sandbox.servicenow.values import DATETIME_FORMAT, PASSWORD_MASK


def field_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def link_header(request: Request, total: int, limit: int, offset: int) -> str:
    base = request.base_url + urlsplit(request.raw_path).path
    kept = [
        (k, v) for k, v in request.query.items() if k not in ("sysparm_offset", "sysparm_limit")
    ]

    def link(at: int, rel: str) -> str:
        params = [*kept, ("sysparm_limit", str(limit)), ("sysparm_offset", str(at))]
        return f'<{base}?{urlencode(params)}>;rel="{rel}"'

    links = [link(0, "first")]
    if offset > 0:
        links.append(link(max(offset - limit, 0), "prev"))
    if offset + limit < total:
        links.append(link(offset + limit, "next"))
    links.append(link((total - 1) // limit * limit if total else 0, "last"))
    return ",".join(links)


@dataclass(frozen=True)
class DateStyle:
    """How the reading account sees date-times: its time zone and date format (sys_user
    `time_zone`, `date_format`; empty means the system's, UTC and yyyy-MM-dd here)."""

    time_zone: str = ""
    date_format: str = ""

    @classmethod
    def of_user(cls, user: Mapping[str, str] | None) -> DateStyle:
        """The style of an account's sys_user row (the system's without one)."""
        if user is None:
            return cls()
        return cls(user.get("time_zone", ""), user.get("date_format", ""))

    def show(self, value: str) -> str:
        """A stored UTC date-time as this account's display value."""
        if not value or (not self.time_zone and not self.date_format):
            return value
        try:
            moment = datetime.strptime(value, DATETIME_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            return value
        local = moment.astimezone(_zone(self.time_zone))
        pattern = self.date_format or "yyyy-MM-dd"
        for java, python in (("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d")):
            pattern = pattern.replace(java, python)
        return local.strftime(f"{pattern} %H:%M:%S")


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name) if name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC  # an unknown zone shows the system's, as the platform does


@dataclass(frozen=True)
class View:
    """How a response renders records: sysparm_display_value, links and sysparm_fields."""

    display: str  # false | true | all
    links: bool
    fields: tuple[str, ...]
    base_url: str
    dates: DateStyle = field(default_factory=lambda: DateStyle())

    @classmethod
    def of(cls, request: Request, dates: DateStyle | None = None) -> View:
        display = request.query.get("sysparm_display_value", "false").lower()
        excluded = request.query.get("sysparm_exclude_reference_link", "").lower() == "true"
        return cls(
            display if display in ("true", "all") else "false",
            not excluded,
            tuple(field_list(request.query.get("sysparm_fields", ""))),
            request.base_url,
            dates or DateStyle(),
        )

    def render(self, store: Store, spec: TableSpec, record: Mapping[str, str]) -> dict[str, Any]:
        """One record as the response shows it."""
        return self.renderer(store, spec)(record)

    def renderer(
        self, store: Store, spec: TableSpec
    ) -> Callable[[Mapping[str, str]], dict[str, Any]]:
        """A function rendering records of one table; fields are resolved once, not per record."""
        paths = self.fields or tuple(column.name for column in spec.fields)
        columns = [(path, store.column(spec.name, path)) for path in paths]
        known = [(path, column) for path, column in columns if column is not None]

        def render(record: Mapping[str, str]) -> dict[str, Any]:
            return {
                path: self._value(store, column, store.value_at(spec.name, record, path))
                for path, column in known
            }

        return render

    def _value(self, store: Store, column: FieldSpec, value: str) -> Any:
        if column.kind is FieldKind.REFERENCE:
            return self._reference(store, column.reference, value)
        shown = display_text(column, value)
        if column.kind is FieldKind.DATETIME:
            shown = self.dates.show(value)
        if self.display == "all":
            return {"display_value": shown, "value": value}
        return shown if self.display == "true" else value

    def _reference(self, store: Store, table: str, value: str) -> Any:
        if not value:
            return {"display_value": "", "value": ""} if self.display == "all" else ""
        link = f"{self.base_url}/api/now/table/{table}/{value}"
        shown = store.display(table, value)
        if self.display == "all":
            both = {"display_value": shown, "value": value}
            return {**both, "link": link} if self.links else both
        if self.display == "true":
            return {"display_value": shown, "link": link} if self.links else shown
        return {"link": link, "value": value} if self.links else value


def display_text(column: FieldSpec, value: str) -> str:
    """A value as the platform displays it: choice labels, integers with grouping."""
    if column.dictionary_type == "password":
        return PASSWORD_MASK if value else ""
    if column.choices:
        return next((label for key, label in column.choices if key == value), value)
    if column.kind is FieldKind.INTEGER and value.strip().lstrip("-").isdigit():
        return f"{int(value):,}"  # integers display with grouping, as the platform formats them
    return value
