"""``genro_asgi.components``: a plugin's swappable part named in config (a built-in name or
``pkg.module:Class``), checked against its documented base class and built with its options;
every mistake is a message naming what is wrong and the config key."""

from __future__ import annotations

import abc
from typing import Any

import pytest

from genro_asgi import ConfigError
from genro_asgi.components import build_component, component_class


class Store(abc.ABC):
    @abc.abstractmethod
    def get(self) -> str: ...


class MemoryStore(Store):
    def __init__(self, size: int = 1) -> None:
        self.size = size

    def get(self) -> str:
        return "memory"


class HalfStore(Store):  # does not implement get
    pass


class FailingStore(MemoryStore):
    def __init__(self) -> None:
        raise RuntimeError("no disk")


BUILTINS: dict[str, type[Store]] = {"memory": MemoryStore}
HERE = __name__
NOT_A_STORE = f"is not a {Store.__module__.partition('.')[0]}.Store subclass"


def test_a_builtin_name_and_a_dotted_path() -> None:
    assert component_class("memory", Store, BUILTINS) is MemoryStore
    assert component_class(f"{HERE}:MemoryStore", Store, BUILTINS) is MemoryStore


@pytest.mark.parametrize(("spec", "message"), [
    ("disk", "must be 'memory' or 'pkg.module:Class', got 'disk'"),
    ("no_such_module_here:X", "cannot import 'no_such_module_here:X'"),
    (f"{HERE}:Missing", f"cannot import '{HERE}:Missing'"),
    (f"{HERE}:BUILTINS", NOT_A_STORE),
    ("builtins:dict", NOT_A_STORE),
    (f"{HERE}:HalfStore", "is abstract (it does not implement get)"),
])
def test_what_cannot_be_used_is_a_clear_value_error(spec: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        component_class(spec, Store, BUILTINS)
    assert message in str(info.value)


def test_build_with_options() -> None:
    store = build_component(MemoryStore, {"size": 3}, "plugins.x.store", "memory")
    assert isinstance(store, MemoryStore) and store.size == 3


def test_an_option_the_class_does_not_take_names_the_options_key() -> None:
    with pytest.raises(ConfigError) as info:
        build_component(MemoryStore, {"sise": 3}, "plugins.x.store", "memory")
    assert str(info.value).startswith("plugins.x.store_options: MemoryStore() ")
    assert "sise" in str(info.value)


def test_a_class_failing_to_start_names_the_key_and_the_spec() -> None:
    options: dict[str, Any] = {}
    with pytest.raises(ConfigError) as info:
        build_component(FailingStore, options, "plugins.x.store", f"{HERE}:FailingStore")
    assert str(info.value) == (f"plugins.x.store: {HERE}:FailingStore failed to start: "
                               "RuntimeError('no disk')")
