"""`snsync expression`: evaluate one mapping expression against a directory user (read through
Graph, with the attributes a cycle synthesizes) or against given values, as Microsoft's
expression builder does."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from snsync.config import Config
from snsync.connections import Connections
from snsync.engine.directory import build_snapshot
from snsync.errors import ConfigError, ExitCode, NotFoundError, SnsyncError
from snsync.graph import source
from snsync.mapping.catalog import UnknownAttributeError, expression_attributes, mapping_attribute
from snsync.mapping.expressions import (
    IGNORE,
    ExpressionEvalError,
    ExpressionSyntaxError,
    evaluate,
    is_redacted,
    parse,
    referenced_attributes,
)

REDACTED = "[redacted]"


@dataclass(frozen=True)
class Evaluation:
    """One expression evaluated: what it read, and what it gave."""

    expression: str
    inputs: Mapping[str, Any]  # each attribute the expression reads, with its value
    result: Any
    ignored: bool  # IgnoreFlowIfNullOrEmpty: the target attribute would not be written
    user: Mapping[str, str] | None = None  # id, displayName, userPrincipalName, scope


def canonical(text: str) -> str:
    """The expression with attribute names spelled as a cycle reads them; exit 2 with the
    column on a syntax error or an unknown attribute."""
    try:
        return expression_attributes(text)
    except ExpressionSyntaxError as exc:
        raise ConfigError(f"expression: {exc}") from None
    except UnknownAttributeError as exc:
        raise ConfigError(f"expression: {exc}") from None


def given_values(assignments: Sequence[str]) -> dict[str, Any]:
    """`--set NAME=VALUE` pairs: true/false/null and JSON lists as such, anything else text."""
    values: dict[str, Any] = {}
    for pair in assignments:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"--set {pair}: write NAME=VALUE (e.g. --set givenName=Ada)")
        try:
            attribute = mapping_attribute(name.strip())
        except UnknownAttributeError as exc:
            raise ConfigError(f"--set {pair}: {exc}") from None
        values[attribute] = _value(pair, text)
    return values


def directory_user(
    config: Config, conns: Connections, user_ref: str, names: set[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The user's attributes as a cycle sees them (Graph values plus IsSoftDeleted, objectId,
    telephoneNumber, manager, appRoleAssignments), and who it is."""
    wanted = names | {a for clauses in config.scope.filters for a in (c.attribute for c in clauses)}
    params = {"$select": ",".join(source.graph_select(wanted))}
    if "manager" in wanted:
        params["$expand"] = "manager($select=id)"
    try:
        raw = conns.graph.get(f"users/{user_ref}", params)
    except NotFoundError:
        raise ConfigError(
            f"--user {user_ref}: no such directory user; give a userPrincipalName or object id"
        ) from None
    app = source.read_app_scope(conns.graph, config)
    snapshot = build_snapshot([raw], app, config.scope, whole_directory=False)
    user = snapshot.users[str(raw["id"])]
    who = {
        "id": user.id,
        "displayName": str(raw.get("displayName") or ""),
        "userPrincipalName": str(raw.get("userPrincipalName") or ""),
        "scope": ("in scope: " if user.in_scope else "not in scope: ") + user.scope_reason,
    }
    return dict(user.attributes), who


def evaluate_text(
    text: str, attributes: Mapping[str, Any], user: Mapping[str, str] | None = None
) -> Evaluation:
    """Evaluate `text` (already canonical) against `attributes`; an evaluation error is exit 1,
    as it fails that one user in a cycle."""
    tree = parse(text)
    read = sorted(referenced_attributes(tree))
    try:
        value = evaluate(tree, attributes)
    except ExpressionEvalError as exc:
        raise ExpressionFailed(f"expression failed (ExpressionEvaluationFailed): {exc}") from None
    inputs = {name: attributes.get(name) for name in read}
    if value is IGNORE:
        return Evaluation(text, inputs, None, True, user)
    if is_redacted(tree):  # Redact(): the value goes to ServiceNow and nowhere else
        return Evaluation(text, inputs, REDACTED, False, user)
    return Evaluation(text, inputs, value, False, user)


class ExpressionFailed(SnsyncError):
    """The expression parsed but failed for these values (exit 1, as for one object)."""

    exit_code = ExitCode.OBJECT_FAILURES


def evaluation_text(result: Evaluation) -> list[str]:
    """The evaluation for people, one line each (the caller escapes control characters)."""
    lines = [f"Expression: {result.expression}"]
    if result.user:
        u = result.user
        lines.append(
            f"User: {u['displayName']} <{u['userPrincipalName']}> ({u['id']}), {u['scope']}"
        )
    lines += [f"  [{name}] = {_shown(value)}" for name, value in result.inputs.items()]
    if result.ignored:
        lines.append(
            "Result: ignored (IgnoreFlowIfNullOrEmpty): the target attribute is not written"
        )
    else:
        lines.append(f"Result: {_shown(result.result)}")
    return lines


def evaluation_json(result: Evaluation) -> dict[str, Any]:
    return {
        "expression": result.expression,
        "user": dict(result.user) if result.user else None,
        "inputs": dict(result.inputs),
        "ignored": result.ignored,
        "result": result.result,
    }


def _value(pair: str, text: str) -> Any:
    if text in ("true", "false", "null"):
        return json.loads(text)
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            raise ConfigError(f'--set {pair}: a list is JSON, e.g. \'["a", "b"]\'') from None
        if isinstance(parsed, list):
            return parsed
    return text


def _shown(value: Any) -> str:
    if value is None:
        return "(null)"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, default=str)
