"""Apply attribute mappings to a directory object: the desired ServiceNow record, with values
converted to the strings ServiceNow stores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from snsync.config import AttributeMapping
from snsync.mapping.expressions import (
    IGNORE,
    EvalContext,
    Expr,
    ExpressionEvalError,
    evaluate,
    is_redacted,
    parse,
    plain_attributes,
    referenced_attributes,
)
from snsync.masking import DIGEST_PREFIX, DIGESTS_KEY, is_masked
from snsync.model import Desired, Reason, SourceObject, compact

# Fields ServiceNow stores as booleans ("true"/"false"); expressions often yield "1"/"0"/"True".
BOOLEAN_FIELDS = frozenset(
    {"active", "locked_out", "vip", "web_service_access_only", "internal_integration_user"}
)
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no", ""})
# A redacted value an object read from the cached picture needs but that no digest stands for:
# equal to no value, so the planner sees a change it cannot write (and asks for a full read).
UNKNOWN_DIGEST = f"{DIGEST_PREFIX}unknown"


@dataclass(frozen=True)
class _Rule:
    index: int
    mapping: AttributeMapping
    expression: Expr | None

    @property
    def redacted(self) -> bool:
        """Whether the rule's value comes out of a Redact() call."""
        return self.expression is not None and is_redacted(self.expression)


class Mapper:
    """Compute desired records for one object type from its mapping list."""

    def __init__(
        self,
        mappings: Sequence[AttributeMapping],
        *,
        section: str = "mappings.users",
        link_field: str | None = "source",
        link_prefix: str = "entra:",
        context: EvalContext | None = None,
    ) -> None:
        self.section = section
        self.link_field = link_field
        self.link_prefix = link_prefix
        self.context = context
        self._rules = [
            _Rule(i, m, parse(m.expression) if m.kind == "expression" and m.expression else None)
            for i, m in enumerate(mappings)
            if m.kind != "none"
        ]
        matching = sorted(
            (m for m in mappings if m.matching), key=lambda m: m.precedence or 1_000_000
        )
        self.matching_fields = tuple(m.target for m in matching)
        self.targets = tuple(r.mapping.target for r in self._rules)
        self.redacted_targets = frozenset(r.mapping.target for r in self._rules if r.redacted)
        self.masked_attributes = _read_only_redacted(self._rules)

    def link_value(self, directory_id: str) -> str:
        """What snsync stamps into the link field for a directory object."""
        return f"{self.link_prefix}{directory_id}"

    def desired(self, user: SourceObject) -> Desired:
        """The record `user` should have; an expression error fails this object only."""
        values: dict[str, str] = {}
        create_only: dict[str, str] = {}
        references: dict[str, tuple[str, str]] = {}
        error: str | None = user.refused
        for rule in self._rules:
            mapping = rule.mapping
            try:
                raw = self._raw_value(rule, user.attributes)
            except _NoDigest:
                values[mapping.target] = UNKNOWN_DIGEST
                continue
            except ExpressionEvalError as exc:
                error = error or f"{self.section}[{rule.index}] ({mapping.target}): {exc}"
                continue
            if raw is IGNORE:
                continue
            text = to_servicenow(mapping.target, raw)
            if mapping.reference and text:
                references[mapping.target] = (mapping.reference, text)
                continue
            if mapping.apply == "on_create" or (not text and mapping.default is not None):
                create_only[mapping.target] = text or (mapping.default or "")
                continue
            values[mapping.target] = text
        if self.link_field:
            values[self.link_field] = self.link_value(user.id)
        merged = {**create_only, **values}
        matching = tuple((f, merged.get(f, "")) for f in self.matching_fields)
        active = merged.get("active", "true" if not _soft_deleted(user) else "false") == "true"
        return Desired(
            directory_id=user.id,
            display_name=user.display_name,
            in_scope=user.in_scope,
            active=active,
            # Compact (model.Row): every in-scope user's Desired exists at once while planning.
            values=compact(values),
            create_only=compact(create_only),
            references=compact(references),
            matching=matching,
            error=error,
            error_reason=Reason.ATTRIBUTE_TOO_LONG if user.refused else None,
            redacted=self.redacted_targets,
        )

    def _raw_value(self, rule: _Rule, attributes: Any) -> Any:
        mapping = rule.mapping
        if rule.redacted and _reads_masked(rule, attributes):
            digests = attributes.get(DIGESTS_KEY) or {}
            if mapping.target not in digests:
                raise _NoDigest
            found = digests[mapping.target]
            return IGNORE if found is None else str(found)
        if rule.expression is not None:
            return evaluate(rule.expression, attributes, self.context)
        if mapping.kind == "constant":
            return mapping.constant
        return attributes.get(mapping.source or "")


def to_servicenow(target: str, value: Any) -> str:
    """A source value as the string ServiceNow stores in `target`."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if target in BOOLEAN_FIELDS:
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return "true"
        if lowered in _FALSE:
            return "false"
    return text


class _NoDigest(Exception):
    """A cached object's redacted input was not kept and no digest of the result was either."""


def _reads_masked(rule: _Rule, attributes: Any) -> bool:
    """Whether the rule reads an attribute the cached picture kept masked (no value)."""
    assert rule.expression is not None
    return any(is_masked(attributes.get(a)) for a in referenced_attributes(rule.expression))


def _read_only_redacted(rules: Sequence[_Rule]) -> frozenset[str]:
    """Attributes read inside Redact() and nowhere else: the cached picture does not keep them."""
    inside: set[str] = set()
    plain: set[str] = set()
    for rule in rules:
        if rule.expression is None:
            plain |= {rule.mapping.source} if rule.mapping.source else set()
            continue
        outside = plain_attributes(rule.expression)
        plain |= outside
        inside |= referenced_attributes(rule.expression) - outside
    return frozenset(inside - plain)


def _soft_deleted(user: SourceObject) -> bool:
    return bool(user.attributes.get("IsSoftDeleted"))
