"""Fuzzing the config loader: YAML files, mappings and GENRO_ASGI_* variables.

Property, for any input: building a server either works or raises one of the framework's own
errors (ConfigError, PluginError: a message naming the source and the key), never a
TypeError, KeyError, RecursionError or a traceback from deep inside; and no value that came
from a secret reference (``{$env: FUZZ_SECRET}``) is echoed in the message.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

import yaml
from fuzzing import arm, values
from hypothesis import given, settings
from hypothesis import strategies as st

from genro_asgi import AsgiServer
from genro_asgi.config import SECTIONS, load_config
from genro_asgi.exceptions import GenroAsgiError

SECRET = "fuzz-SECRET-value-0001"
SERVER_KEYS = ("host", "port", "workers", "max_body_size", "max_header_size", "shutdown_timeout",
               "max_number_digits", "max_number_exponent", "ws_ping_interval", "root_path",
               "limit_concurrency", "timeout_keep_alive", "bogus")
PLUGIN_NAMES = ("errors", "cors", "auth", "compression", "wsx", "metrics", "executor", "debug",
                "nope")

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
                    st.sampled_from(["1MiB", "lots", "-1", "1e999", "{$env: NOPE}"]))
secret_refs = st.one_of(st.just({"$env": "FUZZ_SECRET"}), st.just({"$env": "UNSET_VAR"}),
                        st.just({"$file": "missing.txt"}), st.just({"$file": "/etc/passwd"}),
                        st.just({"$env": ["not", "a", "name"]}))
option_values = st.one_of(scalars, secret_refs, values, st.lists(scalars, max_size=3))
sections = st.fixed_dictionaries({}, optional={
    "server": st.one_of(st.dictionaries(st.sampled_from(SERVER_KEYS), option_values, max_size=4),
                        scalars),
    "logging": st.one_of(st.dictionaries(st.sampled_from(["level", "access_log", "x"]),
                                         option_values, max_size=2), scalars),
    "watchdog": st.dictionaries(st.sampled_from(["enabled", "interval", "timeout", "critical"]),
                                option_values, max_size=3),
    "plugins": st.one_of(st.dictionaries(
        st.sampled_from(PLUGIN_NAMES),
        st.one_of(st.none(), st.dictionaries(st.text(max_size=12), option_values, max_size=3)),
        max_size=3), scalars),
    "apps": st.one_of(st.dictionaries(st.text(max_size=8), st.one_of(
        st.dictionaries(st.sampled_from(["module", "prefix", "wsgi", "lifespan", "token"]),
                        option_values, max_size=3), scalars), max_size=2), scalars),
    "bogus": option_values,
})


def _yaml_text(config: Any) -> str:
    try:
        return yaml.safe_dump(config, default_flow_style=False, allow_unicode=True)
    except yaml.YAMLError:  # a value YAML cannot write (a Decimal): the generator's problem
        return str(config)


def _build(config: Any, root: Path) -> None:
    try:
        AsgiServer(root, config=config, environ={"FUZZ_SECRET": SECRET})
    except GenroAsgiError as exc:
        assert SECRET not in str(exc), str(exc)


@given(config=sections)
def test_config_mappings(config: dict[str, Any]) -> None:
    arm()
    with tempfile.TemporaryDirectory() as root:
        _build(config, Path(root))


@settings(max_examples=max(100, settings().max_examples))
@given(text=st.one_of(
    sections.map(_yaml_text),
    st.text(max_size=300),
    st.sampled_from(["a: [", "{", ": :", "!!python/object:os.system ls", "&a [*a, *a]",
                     "server: &x {port: *x}", "- 1\n- 2", "\t\tserver: 1", "\x00",
                     "0: &0 {0: *0}",
                     "a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\n"
                     "c: &c [*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c]\n"
                     "e: &e [*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e]\n",
                     "server: {port: \"\\ud800\"}"]),
))
def test_config_files(text: str) -> None:
    arm()
    with tempfile.TemporaryDirectory() as root:
        (Path(root) / "config.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
        with contextlib.suppress(GenroAsgiError):
            load_config(Path(root), environ={})


@given(variables=st.dictionaries(
    st.builds(lambda section, key: f"GENRO_ASGI_{section}{key}",
              st.sampled_from([s.upper() for s in SECTIONS] + ["", "X"]),
              st.one_of(st.sampled_from(["_PORT", "_HOST", "__CORS__MAX_AGE", "__", "_",
                                         "__PLUGINS__AUTH"]), st.text(max_size=10))),
    st.text(max_size=30), max_size=4))
def test_environment_variables(variables: dict[str, str]) -> None:
    arm()
    with tempfile.TemporaryDirectory() as root, contextlib.suppress(GenroAsgiError):
        load_config(Path(root), {}, environ=variables)
