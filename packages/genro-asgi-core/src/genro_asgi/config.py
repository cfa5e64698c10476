"""Configuration: config.yaml loading, environment and override layering, validation, secrets.

Precedence, lowest first: built-in defaults < config.yaml < environment
(``GENRO_ASGI_<SECTION>_<KEY>``, nested keys with ``__``) < command-line flags < constructor
arguments. Secrets written as ``{$env: VAR}`` or ``{$file: path}`` are resolved into a copy of
the tree, and their key paths are remembered so that every dump redacts them.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    SecretBytes,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_core import to_jsonable_python

from .exceptions import ConfigError

ENV_PREFIX = "GENRO_ASGI_"
REDACTED = "***"
KeyPath = tuple[str | int, ...]


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    reload: bool = False
    root_path: str = ""
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    max_body_size: ByteSize = ByteSize(1024 * 1024)
    max_header_count: int = Field(100, ge=1)
    max_header_size: ByteSize = ByteSize(16 * 1024)
    max_url_size: ByteSize = Field(ByteSize(8 * 1024), ge=1)
    # multipart/form-data bodies (genro_asgi.multipart): the whole body (instead of
    # max_body_size), parts, one file, one non-file field, the headers of one part; files over
    # upload_spool_size go to an anonymous temporary file in upload_dir (None: system temp)
    max_upload_size: ByteSize = Field(ByteSize(64 * 1024 * 1024), ge=1)
    max_upload_parts: int = Field(100, ge=1)
    max_upload_file_size: ByteSize = Field(ByteSize(64 * 1024 * 1024), ge=1)
    max_upload_field_size: ByteSize = Field(ByteSize(64 * 1024), ge=1)
    max_upload_part_header_size: ByteSize = Field(ByteSize(8 * 1024), ge=1)
    upload_spool_size: ByteSize = Field(ByteSize(1024 * 1024), ge=0)
    upload_dir: str | None = None
    # read deadlines of the HTTP protocol (genro_asgi.http_protocol)
    head_timeout: float = Field(10.0, gt=0)
    body_timeout: float = Field(30.0, gt=0)
    body_min_rate: ByteSize | None = Field(ByteSize(1024), ge=1)
    send_timeout: float = Field(60.0, gt=0)
    http: Literal["auto", "httptools", "h11"] = "auto"
    # numbers in requests: significant digits of a Decimal / digits of an int, and the
    # decimal exponent either way (numbers.NumberLimits)
    max_number_digits: int = Field(100, ge=1, le=100_000)
    max_number_exponent: int = Field(400, ge=0, le=100_000)
    shutdown_timeout: float = Field(30.0, ge=0)
    timeout_keep_alive: int = Field(5, ge=0)
    limit_concurrency: int | None = Field(None, ge=1)
    ws_max_size: ByteSize = ByteSize(16 * 1024 * 1024)
    ws_ping_interval: float | None = Field(20.0, gt=0)
    ws_ping_timeout: float | None = Field(20.0, gt=0)
    proxy_headers: bool = False
    forwarded_allow_ips: str = "127.0.0.1"
    # sync (def) handlers: the server's own thread pool (sync_pool.SyncPool), or inline on
    # the event loop for every def route (a route's own @route(inline=...) wins)
    sync_handlers: Literal["pool", "inline"] = "pool"
    sync_workers: int = Field(16, ge=1, le=1024)
    sync_queue: int = Field(256, ge=0, le=1_000_000)  # calls waiting for a worker; then 503
    sync_retry_after: int = Field(1, ge=0)  # the Retry-After of that 503, in seconds


class LoggingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    access_log: bool = True
    trace_hooks: bool = False

    @field_validator("level", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        """``warning`` as ``WARNING``: ``--log-level`` and uvicorn take either case."""
        return value.upper() if isinstance(value, str) else value


class WatchdogSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    interval: float = Field(30.0, gt=0)
    timeout: float = Field(60.0, gt=0)
    critical: float = Field(300.0, gt=0)
    # an inline sync handler that holds the event loop this long (seconds) is logged
    inline_block: float = Field(0.1, gt=0)


class AppSettings(BaseModel):
    """One mounted application; keys other than module/prefix/wsgi/lifespan are the app's
    parameters."""

    model_config = ConfigDict(extra="allow")

    module: str
    prefix: str | None = None
    wsgi: bool = False
    lifespan: bool = True  # send a mounted ASGI app its own lifespan events

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


APP_KEYS = ("module", "prefix", "wsgi", "lifespan")


def reserved_key_hint(params: Mapping[str, Any]) -> str:
    """`` (did you mean 'prefix' for 'prefx'?)`` for params that look like misspelled app keys."""
    import difflib  # error messages only

    guesses = [f"{close[0]!r} for {key!r}" for key in params
               if (close := difflib.get_close_matches(str(key), APP_KEYS, n=1, cutoff=0.75))]
    return f" (did you mean {', '.join(guesses)}?)" if guesses else ""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    server: ServerSettings = ServerSettings()
    logging: LoggingSettings = LoggingSettings()
    watchdog: WatchdogSettings = WatchdogSettings()
    plugins: dict[str, dict[str, Any] | None] = {}
    apps: dict[str, AppSettings] = {}


SECTIONS = tuple(Settings.model_fields)


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file is an empty config, a broken one a ConfigError."""
    if not path.exists():
        return {}
    import yaml  # only a server with a config file needs it

    try:
        with path.open(encoding="utf-8") as stream:  # a stream: YAML errors name the file
            data = yaml.safe_load(stream)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid UTF-8") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    problem = _alias_problem(data)
    if problem:
        raise ConfigError(f"{path}: {problem}")
    return data


MAX_CONFIG_NODES = 100_000


def _alias_problem(tree: Any) -> str | None:
    """YAML aliases make a graph of a config: one that contains itself would recurse forever,
    and nested aliases can expand to billions of values once walked. Say which, or None."""
    budget = [MAX_CONFIG_NODES]

    def walk(node: Any, ancestors: frozenset[int]) -> str | None:
        budget[0] -= 1
        if budget[0] < 0:
            return (f"the config expands to more than {MAX_CONFIG_NODES} values "
                    "(nested YAML aliases?)")
        if isinstance(node, dict | list):
            if id(node) in ancestors:
                return "a YAML alias refers to a mapping or list that contains it"
            inner = ancestors | {id(node)}
            for child in node.values() if isinstance(node, dict) else node:
                problem = walk(child, inner)
                if problem:
                    return problem
        return None

    return walk(tree, frozenset())


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Turn ``GENRO_ASGI_*`` variables into a nested override tree.

    ``GENRO_ASGI_SERVER_PORT=9000`` sets ``server.port``; the first ``_`` splits section and key.
    With ``__`` anywhere, ``__`` is the only separator: ``GENRO_ASGI_PLUGINS__CORS__MAX_AGE=60``
    sets ``plugins.cors.max_age``. Values are read as YAML scalars (``9000`` is an int).
    """
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        parts = rest.split("__") if "__" in rest else rest.split("_", 1)
        if len(parts) < 2 or parts[0] not in SECTIONS or not all(parts):
            continue
        import yaml

        try:
            value = yaml.safe_load(raw) if raw else raw
        except yaml.YAMLError:
            value = raw
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return tree


def deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: ``override`` on top of ``base``, merging nested mappings key by key."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and not _is_secret_ref(value) and isinstance(
            merged.get(key), dict
        ):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _is_secret_ref(value: Any) -> bool:
    return isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in ("$env", "$file")


class SecretError(ConfigError):
    """A secret reference that cannot be resolved, with the key path that holds it."""

    def __init__(self, path: KeyPath, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{'.'.join(map(str, path)) or '<root>'}: {message}")


def resolve_secrets(
    tree: Any, base_dir: Path, path: KeyPath = (), environ: Mapping[str, str] | None = None
) -> tuple[Any, set[KeyPath]]:
    """Resolve ``{$env: VAR}`` / ``{$file: path}`` into a copy; return it and the secret paths.

    ``environ`` defaults to ``os.environ``; a server given its own environment reads it here too.
    """
    environ = os.environ if environ is None else environ
    if _is_secret_ref(tree):
        kind, ref = next(iter(tree.items()))
        if not isinstance(ref, str) or not ref:
            raise SecretError(path, f"{kind} must be a non-empty string (a variable name or a "
                                    f"file path), got {type(ref).__name__}")
        if kind == "$env":
            if ref not in environ:
                raise SecretError(path, f"environment variable {ref!r} is not set")
            return environ[ref], {path}
        file_path = Path(ref) if Path(ref).is_absolute() else base_dir / ref
        try:
            return file_path.read_text(encoding="utf-8").strip(), {path}
        except OSError as exc:
            raise SecretError(
                path, f"cannot read secret file {file_path}: {exc.strerror}"
            ) from None
    secrets: set[KeyPath] = set()
    if isinstance(tree, Mapping):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out[key], found = resolve_secrets(value, base_dir, (*path, key), environ)
            secrets |= found
        return out, secrets
    if isinstance(tree, list):
        items = []
        for index, value in enumerate(tree):
            resolved, found = resolve_secrets(value, base_dir, (*path, index), environ)
            items.append(resolved)
            secrets |= found
        return items, secrets
    return tree, secrets


def redact(tree: Any, secret_paths: set[KeyPath], path: KeyPath = ()) -> Any:
    """A copy of ``tree`` with every secret path replaced by ``***``."""
    if path in secret_paths:
        return REDACTED
    if isinstance(tree, Mapping):
        return {k: redact(v, secret_paths, (*path, k)) for k, v in tree.items()}
    if isinstance(tree, list):
        return [redact(v, secret_paths, (*path, i)) for i, v in enumerate(tree)]
    return tree


# values under such keys are never echoed in errors (an unknown key may be a mistyped secret),
# nor shown in a dump of options that no model describes (an app's params)
_SECRET_KEY = re.compile(r"token|key|secret|passw|hash|credential|private|signature",
                         re.IGNORECASE)


def is_secret_key(name: str | int) -> bool:
    """Whether a key's name says its value is a secret (``api_key``, ``password_hash``...)."""
    return isinstance(name, str) and _SECRET_KEY.search(name) is not None


def redact_by_name(tree: Any) -> Any:
    """A copy with every scalar under a secret-looking key replaced by ``***``: for option
    trees no model describes, where nothing else says which values are secrets."""
    if isinstance(tree, Mapping):
        return {k: REDACTED if is_secret_key(k) and _is_scalar(v) else redact_by_name(v)
                for k, v in tree.items()}
    if isinstance(tree, list):
        return [redact_by_name(v) for v in tree]
    return tree


def _is_scalar(value: Any) -> bool:
    return value is not None and not isinstance(value, Mapping | list | bool)


def dump_model(model: BaseModel) -> Any:
    """A validated options model as JSON-able data, with every SecretStr/SecretBytes field
    (how config models mark their secrets) shown as ``***``."""
    return to_jsonable_python(_hide_secrets(model.model_dump(mode="python")))


def _hide_secrets(value: Any) -> Any:
    if isinstance(value, SecretStr | SecretBytes):
        return REDACTED
    if isinstance(value, Mapping):
        return {k: _hide_secrets(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_hide_secrets(v) for v in value]
    return value


def format_validation_error(
    exc: ValidationError, source: str | Callable[[KeyPath], str], prefix: KeyPath = (),
    secrets: set[KeyPath] | None = None,
) -> str:
    """One line per problem: ``source: key.path: message (got value)``.

    ``source`` names where the values came from, or tells it per key path when the config was
    layered from several places. The value is left out where it may be a secret: under a
    secret-looking key, or anywhere inside a ``{$env}`` / ``{$file}`` reference (``secrets``).
    """
    secret_paths = secrets or set()
    lines = []
    for err in exc.errors(include_url=False):
        path = (*prefix, *err["loc"])
        loc = ".".join(str(p) for p in path) or "<root>"
        got = err.get("input")
        hidden = (err["type"] in ("missing", "extra_forbidden") or isinstance(got, dict)
                  or any(_SECRET_KEY.search(str(part)) for part in path)
                  or any(path[:depth] in secret_paths for depth in range(len(path) + 1)))
        shown = "" if hidden else f" (got {got!r})"
        where = source(path) if callable(source) else source
        lines.append(f"{where}: {loc}: {err['msg']}{shown}")
    return "\n".join(lines)


def _has_path(tree: Any, path: KeyPath) -> bool:
    for part in path:
        if not isinstance(tree, Mapping) or part not in tree:
            return False
        tree = tree[part]
    return True


Layers = list[tuple[str, Mapping[str, Any] | None]]


def layered_source(layers: Layers) -> Callable[[KeyPath], str]:
    """Which layer set a key path: the last one that has it (later layers win)."""

    def source_of(path: KeyPath) -> str:
        label: str
        for label, tree in reversed(layers):
            if tree and _has_path(tree, path):
                if label == "environment":
                    names = [str(p).upper() for p in path]
                    joined = "_".join(names) if len(names) == 2 else "__".join(names)
                    return f"environment variable {ENV_PREFIX}{joined}"
                return label
        return layers[0][0]

    return source_of


class LoadedConfig:
    """The effective configuration: validated settings, the raw tree and where it came from."""

    def __init__(
        self, settings: Settings, tree: dict[str, Any], secrets: set[KeyPath], source: str,
        source_of: Callable[[KeyPath], str] | None = None,
    ) -> None:
        self.settings = settings
        self.tree = tree
        self.secret_paths = secrets
        self.source = source
        self.source_of: Callable[[KeyPath], str] = source_of or (lambda path: source)

    def dump(self, plugin_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The effective configuration with defaults filled in and every secret redacted.

        ``plugin_options`` maps plugin names to their validated options: a plugin with a
        config model is dumped from it (its SecretStr fields, given in plain YAML or through
        an environment variable, show as ``***``). Options no model describes (a plugin
        without one, an app's params) are redacted by key name as well as by ``{$env}`` /
        ``{$file}`` origin.
        """
        validated = plugin_options or {}
        data = self.settings.model_dump(mode="json")
        plugins: dict[str, Any] = {}
        for name, options in (self.tree.get("plugins") or {}).items():
            model = validated.get(name)
            plugins[name] = dump_model(model) if isinstance(model, BaseModel) \
                else redact_by_name(redact(copy.deepcopy(options), self.secret_paths,
                                           ("plugins", name)))
        data["plugins"] = plugins
        data["apps"] = redact_by_name(data["apps"])
        return redact(data, self.secret_paths)  # type: ignore[no-any-return]


def load_config(
    server_dir: Path,
    config: str | Path | Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cli: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> LoadedConfig:
    """Layer defaults, file, environment, CLI and constructor overrides, then validate."""
    if isinstance(config, Mapping):
        tree, source = copy.deepcopy(dict(config)), "<config dict>"
    else:
        path = Path(config) if config is not None else server_dir / "config.yaml"
        if not path.is_absolute():
            path = server_dir / path
        if config is not None and not path.exists():
            raise ConfigError(f"{path}: config file not found")
        tree, source = load_yaml(path), str(path)
    layers: Layers = [
        (source, tree),
        ("environment", env_overrides(os.environ if environ is None else environ)),
        ("command line", cli),
        ("constructor arguments", overrides),
    ]
    for _, layer in layers[1:]:
        if layer:
            tree = deep_merge(tree, layer)
    source_of = layered_source(layers)
    try:
        resolved, secrets = resolve_secrets(tree, server_dir, environ=environ)
    except SecretError as exc:
        raise ConfigError(f"{source_of(exc.path)}: {exc}") from None
    try:
        settings = Settings.model_validate(resolved)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source_of, (), secrets)) from None
    return LoadedConfig(settings, resolved, secrets, source, source_of)
