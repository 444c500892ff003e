"""Load the YAML config: find it, expand `${ENV}` and `*_file` secrets, validate it into a typed
`Config`, and turn every mistake into one line naming the file, the key path and the problem."""

from __future__ import annotations

import os
import re
import stat
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from snsync.config_types import (
    Address,
    Duration,
    ExistingFile,
    HttpsUrl,
    relative_to_config,
)
from snsync.config_types import instance_url as instance_url
from snsync.config_types import parse_duration as parse_duration
from snsync.errors import ConfigError

CONFIG_ENV = "SNSYNC_CONFIG"
SECRET_KEYS = frozenset({"client_secret", "password"})
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class LiteralSecretWarning(UserWarning):
    """A secret is written into a config file that other accounts can read."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GraphCertificate(_Section):
    """A certificate credential: the PEM holding the private key, and its SHA-1 thumbprint."""

    path: ExistingFile
    thumbprint: str = Field(pattern=r"^[0-9A-Fa-f]{40}$")


class GraphConfig(_Section):
    """How to reach Microsoft Graph and which enterprise app's assignments define the scope."""

    tenant_id: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = None
    certificate: GraphCertificate | None = None
    service_principal_id: str | None = None
    app_id: str | None = None
    authority_host: HttpsUrl = "https://login.microsoftonline.com"
    graph_url: HttpsUrl = "https://graph.microsoft.com"
    ca_bundle: ExistingFile | None = None
    page_size: int = Field(default=999, ge=1, le=999)
    timeout_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _one_credential_one_app(self) -> Self:
        if (self.client_secret is None) == (self.certificate is None):
            raise ValueError("set exactly one of client_secret and certificate")
        if (self.service_principal_id is None) == (self.app_id is None):
            raise ValueError(
                "set exactly one of service_principal_id and app_id (the ServiceNow "
                "enterprise app whose assignments define who is synced)"
            )
        return self


class BasicAuth(_Section):
    """ServiceNow basic authentication with a dedicated integration account."""

    type: Literal["basic"] = "basic"
    username: str = Field(min_length=1)
    password: SecretStr


class OAuthAuth(_Section):
    """ServiceNow OAuth (password grant against /oauth_token.do) for an integration account."""

    type: Literal["oauth"]
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    username: str = Field(min_length=1)
    password: SecretStr


class ServiceNowConfig(_Section):
    """Which ServiceNow instance to write to, and how."""

    instance: str
    auth: BasicAuth | OAuthAuth = Field(discriminator="type")
    ca_bundle: ExistingFile | None = None
    max_concurrency: int = Field(default=8, ge=1, le=64)
    batch_size: int = Field(default=50, ge=1, le=1000)  # writes per Batch API request
    page_size: int = Field(default=1000, ge=1, le=10000)
    timeout_s: float = Field(default=60.0, gt=0)

    @field_validator("instance")
    @classmethod
    def _instance(cls, value: str) -> str:
        return instance_url(value)

    @field_validator("auth", mode="before")
    @classmethod
    def _basic_by_default(cls, value: Any) -> Any:
        if isinstance(value, dict) and "type" not in value:
            return {**value, "type": "basic"}
        return value


class ScopeClause(_Section):
    """One clause of a scoping filter."""

    attribute: str = Field(min_length=1)
    operator: Literal[
        "EQUALS",
        "NOT EQUALS",
        "IS TRUE",
        "IS FALSE",
        "IS NULL",
        "IS NOT NULL",
        "REGEX MATCH",
        "NOT REGEX MATCH",
        "Includes",
        "ENDS_WITH",
        "Greater_Than",
        "Greater_Than_OR_EQUALS",
        "&",
        "!&",
    ]
    value: str | None = None

    @model_validator(mode="after")
    def _value_present(self) -> Self:
        needs_value = self.operator not in ("IS TRUE", "IS FALSE", "IS NULL", "IS NOT NULL")
        if needs_value and self.value is None:
            raise ValueError(f"operator '{self.operator}' needs a value")
        if self.operator in ("REGEX MATCH", "NOT REGEX MATCH") and self.value is not None:
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"value is not a valid regular expression: {exc}") from exc
        return self


class ScopeConfig(_Section):
    """Who is in scope: assigned users, members of assigned groups, narrowed by filters."""

    expand_nested_groups: bool = False
    excluded_app_roles: list[str] = Field(default_factory=list)
    filters: list[list[ScopeClause]] = Field(default_factory=list)

    @field_validator("filters")
    @classmethod
    def _known_attributes(cls, value: list[list[ScopeClause]]) -> list[list[ScopeClause]]:
        from snsync.mapping.sources import filter_attributes

        return filter_attributes(value)


class AttributeMapping(_Section):
    """One attribute mapping, as in the Azure portal: Direct, Constant, Expression or None."""

    target: str = Field(min_length=1)
    type: Literal["direct", "constant", "expression", "none"] | None = None
    source: str | None = None
    constant: str | None = None
    expression: str | None = None
    apply: Literal["always", "on_create"] = "always"
    default: str | None = None
    matching: bool = False
    precedence: int | None = Field(default=None, ge=1)
    reference: str | None = None  # target table for a reference field resolved by display value

    @field_validator("reference")
    @classmethod
    def _known_table(cls, value: str | None) -> str | None:
        from snsync.mapping.catalog import reference_table

        return None if value is None else reference_table(value)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        kind = self.kind
        given = {"direct": self.source, "constant": self.constant, "expression": self.expression}
        if kind != "none" and given[kind] is None:
            field = {"direct": "source", "constant": "constant", "expression": "expression"}[kind]
            raise ValueError(f"a {kind} mapping needs '{field}'")
        if kind == "expression" and self.expression is not None:
            from snsync.mapping.expressions import ExpressionSyntaxError, parse

            try:
                parse(self.expression)
            except ExpressionSyntaxError as exc:
                raise _ExpressionError(str(exc)) from exc
        return self

    @property
    def kind(self) -> str:
        """The mapping type, inferred from the keys given when `type` is left out."""
        if self.type:
            return self.type
        if self.expression is not None:
            return "expression"
        if self.constant is not None:
            return "constant"
        if self.source is not None:
            return "direct"
        return "none"


class _ExpressionError(ValueError):
    """An expression syntax error, reported at the `expression` key."""


def _default_user_mappings() -> list[AttributeMapping]:
    from snsync.mapping.defaults import DEFAULT_USER_MAPPINGS

    return [AttributeMapping.model_validate(m) for m in DEFAULT_USER_MAPPINGS]


def _default_group_mappings() -> list[AttributeMapping]:
    from snsync.mapping.defaults import DEFAULT_GROUP_MAPPINGS

    return [AttributeMapping.model_validate(m) for m in DEFAULT_GROUP_MAPPINGS]


class MappingsConfig(_Section):
    """Attribute mappings for users and groups, and where snsync stamps the directory id."""

    users: list[AttributeMapping] = Field(default_factory=_default_user_mappings)
    groups: list[AttributeMapping] = Field(default_factory=_default_group_mappings)
    link_field: str | None = "source"
    link_prefix: str = "entra:"

    @field_validator("users")
    @classmethod
    def _users_match(cls, value: list[AttributeMapping]) -> list[AttributeMapping]:
        from snsync.mapping.sources import mapping_sources

        return _check_mapping_list(mapping_sources(value, "user"))

    @field_validator("groups")
    @classmethod
    def _groups_match(cls, value: list[AttributeMapping]) -> list[AttributeMapping]:
        from snsync.mapping.sources import mapping_sources

        return _check_mapping_list(mapping_sources(value, "group"))


def _check_mapping_list(mappings: list[AttributeMapping]) -> list[AttributeMapping]:
    targets = [m.target for m in mappings]
    duplicates = sorted({t for t in targets if targets.count(t) > 1})
    if duplicates:
        raise ValueError(f"target '{duplicates[0]}' is mapped more than once")
    if not any(m.matching for m in mappings):
        raise ValueError("no mapping has 'matching: true'; one attribute must match records")
    return mappings


class ScheduleConfig(_Section):
    """When `snsync run` (without --once) cycles."""

    interval: Duration = 2400
    jitter: int = Field(default=60, ge=0)
    full_every: Duration = 86400
    max_cycle_time: Duration = 1800


class ActionsConfig(_Section):
    """Which kinds of write a cycle may make."""

    create: bool = True
    update: bool = True
    disable: bool = True


DisableLimit = int | str | None


def _limit(value: Any) -> Any:
    if value is None or isinstance(value, int):
        if isinstance(value, int) and value < 0:
            raise ValueError("must be 0 or more")
        return value
    text = str(value).strip()
    if text.endswith("%") and text[:-1].replace(".", "", 1).isdigit():
        return text
    raise ValueError(f"'{value}' is not a number of objects nor a percentage like 5%")


class DisableLimits(_Section):
    """Most disables one cycle may make before every disable is held (a number or 'N%')."""

    users: DisableLimit = 500
    groups: DisableLimit = 50

    @field_validator("users", "groups", mode="before")
    @classmethod
    def _check(cls, value: Any) -> Any:
        return _limit(value)


class QuarantineConfig(_Section):
    """When failures mean the job itself is broken, and how cycles then back off."""

    failure_ratio: float = Field(default=0.4, gt=0, le=1)
    min_writes: int = Field(default=50, ge=1)
    auth_failures: int = Field(default=3, ge=1)
    backoff: list[Duration] = Field(default_factory=lambda: [21600, 43200, 86400])
    stop_after: Duration = 28 * 86400


class SafetyConfig(_Section):
    """Limits on what one cycle may do."""

    actions: ActionsConfig = Field(default_factory=ActionsConfig)
    skip_out_of_scope_deletions: bool = False
    max_disables: DisableLimits = Field(default_factory=DisableLimits)
    retry_backoff: list[Duration] = Field(default_factory=lambda: [21600, 43200, 86400])
    quarantine: QuarantineConfig = Field(default_factory=QuarantineConfig)
    # Trust (README 'Safety'): whose records snsync never writes or adopts only with approval.
    privileged_roles: list[str] = Field(
        default_factory=lambda: ["admin", "security_admin", "user_admin"]
    )
    protected_users: list[str] = Field(default_factory=list)  # user_name or sys_id
    protected_groups: list[str] = Field(default_factory=list)  # name or sys_id
    target_min_share: float = Field(default=0.5, ge=0, le=1)

    @field_validator("privileged_roles", "protected_users", "protected_groups")
    @classmethod
    def _no_blank(cls, value: list[str]) -> list[str]:
        if any(not item.strip() for item in value):
            raise ValueError("entries must not be empty")
        return [item.strip() for item in value]

    @field_validator("max_disables", mode="before")
    @classmethod
    def _users_only(cls, value: Any) -> Any:
        return {"users": value} if not isinstance(value, dict) else value


class ReferencesConfig(_Section):
    """Reference fields resolved by display value (department, location, company)."""

    create_missing: bool = False


class LimitsConfig(_Section):
    """Bounds against hostile or broken answers (snsync.bounds); far above real answers."""

    max_pages: int = Field(default=100_000, ge=1)
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_json_depth: int = Field(default=64, ge=8)
    max_attribute_length: int = Field(default=32_768, ge=1)


class ProvisionConfig(_Section):
    """`snsync provision` on demand."""

    # A group provisioned on demand brings at most this many members (Microsoft's portal: 5);
    # the rest are synced by the next cycle.
    max_group_members: int = Field(default=5, ge=1, le=100)


class StateConfig(_Section):
    """Where snsync keeps its links, cycles and provisioning log."""

    path: Path = Path("~/.local/state/snsync/state.db")
    keep_log: Duration = 90 * 86400  # provisioning-log rows older than this are pruned

    @field_validator("path")
    @classmethod
    def _expand(cls, value: Path, info: ValidationInfo) -> Path:
        return relative_to_config(value, info)


Kind = Literal["failures", "held_disables", "quarantine", "recovery"]
KINDS: frozenset[Kind] = frozenset(get_args(Kind))


class SmtpConfig(_Section):
    """How to reach the SMTP server and whom to mail."""

    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    sender: Address
    to: list[Address] = Field(min_length=1)
    timeout_s: float = Field(default=30, gt=0)
    ca_bundle: ExistingFile | None = None

    @model_validator(mode="after")
    def _credentials(self) -> Self:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password (or neither) for the SMTP login")
        if self.username is not None and self.security == "none":
            raise ValueError(
                "security: none would send the SMTP password unencrypted; "
                "use starttls (port 587) or tls (port 465)"
            )
        return self


class NotificationsConfig(_Section):
    """Which problems to mail, to whom, and how often to repeat an unchanged one."""

    email: SmtpConfig | None = None
    repeat_after: Annotated[int, BeforeValidator(lambda v: parse_duration(v))] = Field(
        default=86400, ge=0
    )
    on: frozenset[Kind] = KINDS


class Config(_Section):
    """The whole validated configuration."""

    graph: GraphConfig
    servicenow: ServiceNowConfig
    scope: ScopeConfig = Field(default_factory=ScopeConfig)
    mappings: MappingsConfig = Field(default_factory=MappingsConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    references: ReferencesConfig = Field(default_factory=ReferencesConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    provision: ProvisionConfig = Field(default_factory=ProvisionConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    source_path: Path | None = Field(default=None, exclude=True)


def find_config(explicit: str | None, env: Mapping[str, str] | None = None) -> Path:
    """The config file to use: --config, $SNSYNC_CONFIG, ./config.yaml, ~/.config/snsync/."""
    env = os.environ if env is None else env
    if explicit:
        return Path(explicit).expanduser()
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    for candidate in (Path("config.yaml"), Path("~/.config/snsync/config.yaml").expanduser()):
        if candidate.is_file():
            return candidate
    raise ConfigError(
        "no config file: pass --config PATH, set $SNSYNC_CONFIG, or create ./config.yaml "
        "(start from config.example.yaml)"
    )


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read, expand and validate the config at `path`; raises ConfigError with one line."""
    env = os.environ if env is None else env
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, col {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"{path}: {where}{problem}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (graph, ...)")
    literal: list[str] = []
    try:
        expanded = _expand(raw, (), env, path.parent, literal)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if literal:
        _warn_literal_secrets(path, literal)
    try:
        config = Config.model_validate(expanded, context={"base": path.parent})
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_first_problem(exc)}") from None
    return config.model_copy(update={"source_path": path})


def _expand(
    node: Any, where: tuple[str | int, ...], env: Mapping[str, str], base: Path, literal: list[str]
) -> Any:
    if isinstance(node, dict):
        result: dict[str, Any] = {}
        for key, value in node.items():
            key = str(key)
            if key.endswith("_file") and key[: -len("_file")] in SECRET_KEYS:
                name = key[: -len("_file")]
                secret_path = _expand(value, (*where, key), env, base, literal)
                result[name] = _read_secret_file(secret_path, (*where, key), base)
                continue
            if key in SECRET_KEYS and isinstance(value, str) and not _ENV_REF.search(value):
                literal.append(_dotted((*where, key)))
            result[key] = _expand(value, (*where, key), env, base, literal)
        return result
    if isinstance(node, list):
        return [_expand(item, (*where, i), env, base, literal) for i, item in enumerate(node)]
    if isinstance(node, str):
        return _ENV_REF.sub(_env_lookup(env, where), node)
    return node


def _env_lookup(env: Mapping[str, str], where: tuple[str | int, ...]) -> Callable[[Any], str]:
    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise ConfigError(
                f"{_dotted(where)}: environment variable ${{{name}}} is not set "
                "(export it before running snsync)"
            )
        return env[name]

    return lookup


def _read_secret_file(value: Any, where: tuple[str | int, ...], base: Path) -> str:
    path = (base / Path(str(value)).expanduser()) if value else Path()
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(
            f"{_dotted(where)}: cannot read secret file '{path}': {exc.strerror}"
        ) from exc


def _warn_literal_secrets(path: Path, keys: list[str]) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        warnings.warn(
            f"{path}: {', '.join(keys)} written into a file others can read; "
            f"use ${{ENV}} or *_file, or run: chmod 600 {path}",
            LiteralSecretWarning,
            stacklevel=2,
        )


def _dotted(where: tuple[str | int, ...]) -> str:
    text = ""
    for part in where:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top level)"


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p in ("basic", "oauth")))
    kind = error["type"]
    message = str(error["msg"])
    if kind == "extra_forbidden":
        message = "unknown key (check its spelling and section; see config.example.yaml)"
    elif kind == "missing":
        message = "required key is missing"
    elif message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    elif kind == "literal_error":
        message = f"{message[0].lower()}{message[1:]}"
    if _is_expr(error):
        loc = (*loc, "expression")
    from snsync.mapping.sources import LocatedError

    located = (error.get("ctx") or {}).get("error")
    if isinstance(located, LocatedError):
        loc = (*loc, *located.where)
    return f"{_dotted(loc)}: {message}"


def _is_expr(error: Any) -> bool:
    ctx = error.get("ctx") or {}
    return isinstance(ctx.get("error"), _ExpressionError)
