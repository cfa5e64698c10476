"""The plugin system: discovery, loading, validation, ordering, isolated calls and the core hooks.

Plugins here are throwaway modules written under tmp_path (``write_module``); "installed"
plugins are metadata-only distributions placed on sys.path (``write_module.distribution``).
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable
from typing import Any

import pytest

import genro_asgi
from genro_asgi import AsgiServer, PluginError, StartupError
from genro_asgi.plugins import installed_plugins
from genro_asgi.testing import AsyncTestClient, TestClient

MakeServer = Callable[..., AsgiServer]

RECORDER = """
class Recorder(Plugin):
    '''Records its startup/shutdown under the label given in its config.'''

    @hookimpl
    async def genro_asgi_startup(self, server):
        await asyncio.sleep(0)
        record(server, ("start", self.config["label"]))

    @hookimpl
    def genro_asgi_shutdown(self, server):
        record(server, ("stop", self.config["label"]))


class First(Plugin):
    @hookimpl(tryfirst=True)
    def genro_asgi_startup(self, server):
        record(server, ("start", self.config["label"]))


class Last(Plugin):
    @hookimpl(trylast=True)
    async def genro_asgi_startup(self, server):
        record(server, ("start", self.config["label"]))
"""

API_APP = """
class Api(AsgiApplication):
    @route()
    def boom(self):
        raise ValueError("kaboom-detail")

    @route()
    def teapot(self):
        raise HTTPException(418, "short and stout", headers={"X-Tea": "earl grey"})

    @route(methods=["GET"])
    def only_get(self):
        return "ok"

    @route()
    async def hello(self):
        return {"hello": "world"}
"""


def calls(server: AsgiServer) -> list[Any]:
    return list(getattr(server.state, "calls", []))


# -- discovery ----------------------------------------------------------------------------------


def test_core_registers_errors_entry_point() -> None:
    found = installed_plugins()
    assert "errors" in found
    errors = found["errors"]
    assert errors.value == "genro_asgi.builtin.errors:ErrorsPlugin"
    assert errors.distribution == "genro-asgi-core"
    assert errors.version == genro_asgi.__version__


def test_discovery_reads_metadata_without_importing(write_module: Any) -> None:
    mod = write_module("raise RuntimeError('imported at discovery!')\n", stem="explodes")
    write_module.distribution("gap-explodes", "1.2.3", {"gap_explodes": f"{mod}:Thing"})
    found = installed_plugins()
    assert found["gap_explodes"].distribution == "gap-explodes"
    assert found["gap_explodes"].version == "1.2.3"
    assert found["gap_explodes"].value == f"{mod}:Thing"
    assert mod not in sys.modules


def test_only_named_plugins_are_imported(write_module: Any, make_server: MakeServer) -> None:
    explodes = write_module("raise RuntimeError('must not be imported')\n", stem="explodes")
    good = write_module(RECORDER, stem="good")
    write_module.distribution("gap-pair", "0.3.0", {"gap_bad": f"{explodes}:Thing",
                                                     "gap_good": f"{good}:Recorder"})
    server = make_server({"plugins": {"gap_good": {"label": "g"}}})
    assert list(server.plugins.names()) == ["errors", "gap_good"]
    assert explodes not in sys.modules
    loaded = server.plugins.loaded["gap_good"]
    assert (loaded.distribution, loaded.version) == ("gap-pair", "0.3.0")
    rows = {row["name"]: row for row in server.plugins.describe()}
    assert rows["gap_bad"]["enabled"] is False
    assert rows["gap_good"]["enabled"] is True
    assert rows["gap_good"]["hooks"] == ["genro_asgi_shutdown", "genro_asgi_startup"]
    assert rows["errors"]["hooks"] == ["genro_asgi_exception_response"]
    assert explodes not in sys.modules  # describe() does not import either


def test_installed_plugin_that_fails_to_import_names_its_distribution(
        write_module: Any, make_server: MakeServer) -> None:
    explodes = write_module("raise RuntimeError('broken at import')\n", stem="explodes")
    write_module.distribution("gap-broken", "9.9", {"gap_broken": f"{explodes}:Thing"})
    with pytest.raises(PluginError, match=r"'gap_broken' \(gap-broken\) failed to import.*"
                                          r"broken at import"):
        make_server({"plugins": {"gap_broken": {}}})


def test_unknown_plugin_lists_installed(write_module: Any, make_server: MakeServer) -> None:
    good = write_module(RECORDER, stem="good")
    write_module.distribution("gap-one", "1.0", {"gap_one": f"{good}:Recorder"})
    with pytest.raises(PluginError) as info:
        make_server({"plugins": {"corz": {}}})
    message = str(info.value)
    assert "'corz' is not installed" in message
    assert "errors" in message and "gap_one" in message


# -- local plugins ------------------------------------------------------------------------------


def test_local_class_plugin_by_module_key(write_module: Any, make_server: MakeServer) -> None:
    mod = write_module("""
        class AuditPlugin(Plugin):
            pass
    """, stem="audit")
    server = make_server({"plugins": {"audit": {"module": f"{mod}:AuditPlugin", "level": 3}}})
    plugin = server.plugins.get("audit")
    assert type(plugin).__name__ == "AuditPlugin"
    assert plugin.server is server
    assert plugin.config == {"level": 3}  # module/order are not plugin options
    loaded = server.plugins.loaded["audit"]
    assert loaded.source == f"{mod}:AuditPlugin"
    assert loaded.distribution is None


def test_local_module_plugin_by_dotted_name(write_module: Any, make_server: MakeServer) -> None:
    dotted = write_module("""
        @hookimpl
        def genro_asgi_configure(server):
            record(server, "module plugin configured")
    """, stem="audit", package="gap_pkg")
    assert "." in dotted
    server = make_server({"plugins": {dotted: {}}})
    assert server.plugins.get(dotted) is importlib.import_module(dotted)
    assert calls(server) == ["module plugin configured"]


def test_local_class_plugin_by_colon_name(write_module: Any, make_server: MakeServer) -> None:
    mod = write_module(RECORDER, stem="colon")
    server = make_server({"plugins": {f"{mod}:Recorder": {"label": "c"}}})
    assert type(server.plugins.get(f"{mod}:Recorder")).__name__ == "Recorder"


def test_local_plugin_that_cannot_be_imported(make_server: MakeServer) -> None:
    with pytest.raises(PluginError, match=r"plugin 'audit': cannot import 'gap_nowhere:Audit'"):
        make_server({"plugins": {"audit": {"module": "gap_nowhere:Audit"}}})


def test_local_plugin_with_missing_attribute(write_module: Any, make_server: MakeServer) -> None:
    mod = write_module("X = 1\n")
    with pytest.raises(PluginError, match=rf"cannot import '{mod}:Missing'"):
        make_server({"plugins": {"audit": {"module": f"{mod}:Missing"}}})


def test_class_plugin_gets_one_instance_per_server(write_module: Any, tmp_path: Any) -> None:
    mod = write_module(RECORDER)
    config = {"plugins": {"rec": {"module": f"{mod}:Recorder", "label": "x"}}}
    one = AsgiServer(tmp_path, config=config, environ={})
    two = AsgiServer(tmp_path, config=config, environ={})
    assert one.plugins.get("rec") is not two.plugins.get("rec")
    assert one.plugins.get("rec").server is one
    assert two.plugins.get("rec").server is two
    assert one.plugins.get("errors") is not two.plugins.get("errors")


def test_plugin_whose_constructor_fails(write_module: Any, make_server: MakeServer) -> None:
    mod = write_module("""
        class Broken(Plugin):
            def __init__(self, server, config):
                raise ValueError("no database")
    """)
    with pytest.raises(PluginError, match=r"plugin 'db' failed to initialise: .*no database"):
        make_server({"plugins": {"db": {"module": f"{mod}:Broken"}}})


def test_same_module_plugin_under_two_names_is_refused(
        write_module: Any, make_server: MakeServer) -> None:
    mod = write_module("""
        @hookimpl
        def genro_asgi_configure(server):
            pass
    """)
    with pytest.raises(PluginError, match=r"plugin 'two' cannot be registered"):
        make_server({"plugins": {"one": {"module": mod}, "two": {"module": mod}}})


# -- config models and compatibility ------------------------------------------------------------


CONFIGURED = """
from pydantic import BaseModel, ConfigDict


class AuditConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: int = 1
    target: str


class Audit(Plugin):
    config_model = AuditConfig
"""


def test_config_model_validates_options(write_module: Any, make_server: MakeServer) -> None:
    mod = write_module(CONFIGURED)
    server = make_server({"plugins": {"audit": {"module": f"{mod}:Audit", "target": "db",
                                                "level": "4", "order": 3}}})
    config = server.plugins.plugin_config("audit")
    assert type(config).__name__ == "AuditConfig"
    assert (config.level, config.target) == (4, "db")
    assert server.plugins.get("audit").config is config
    assert server.plugins.loaded["audit"].order == 3


def test_config_model_errors_name_plugin_and_key(write_module: Any, make_server: MakeServer
                                                 ) -> None:
    mod = write_module(CONFIGURED)
    with pytest.raises(PluginError) as info:
        make_server({"plugins": {"audit": {"module": f"{mod}:Audit", "level": "high",
                                           "colour": "red"}}})
    message = str(info.value)
    assert "plugins.audit.level: Input should be a valid integer" in message
    assert "'high'" in message
    assert "plugins.audit.target: Field required" in message
    assert "plugins.audit.colour: Extra inputs are not permitted" in message


def test_errors_plugin_options_are_validated(make_server: MakeServer) -> None:
    with pytest.raises(PluginError, match=r"plugins\.errors\.show_tracebak"):
        make_server({"plugins": {"errors": {"show_tracebak": True}}})


def test_config_model_that_is_not_pydantic(write_module: Any, make_server: MakeServer) -> None:
    mod = write_module("""
        class Odd(Plugin):
            config_model = dict
    """)
    with pytest.raises(PluginError, match=r"plugin 'odd': config_model must be a pydantic"):
        make_server({"plugins": {"odd": {"module": f"{mod}:Odd"}}})


@pytest.mark.parametrize("order", ["first", 1.5, True])
def test_order_must_be_an_integer(write_module: Any, make_server: MakeServer, order: Any) -> None:
    mod = write_module(RECORDER)
    with pytest.raises(PluginError, match=r"plugins\.rec\.order: must be an integer"):
        make_server({"plugins": {"rec": {"module": f"{mod}:Recorder", "order": order}}})


def test_incompatible_core_version_is_refused(write_module: Any, make_server: MakeServer
                                              ) -> None:
    mod = write_module("""
        class Future(Plugin):
            requires_core = ">=9.0,<10"

        class Fits(Plugin):
            requires_core = ">=0.1,<1"

        class Nonsense(Plugin):
            requires_core = "about five"
    """)
    with pytest.raises(PluginError) as info:
        make_server({"plugins": {"future": {"module": f"{mod}:Future"}}})
    message = str(info.value)
    assert "'future'" in message
    assert ">=9.0,<10" in message  # which versions fit
    assert genro_asgi.__version__ in message  # and what is running
    server = make_server({"plugins": {"fits": {"module": f"{mod}:Fits"}}})
    assert "fits" in server.plugins.names()
    with pytest.raises(PluginError, match=r"'nonsense' declares an invalid requires_core"):
        make_server({"plugins": {"nonsense": {"module": f"{mod}:Nonsense"}}})


def test_module_plugin_requires_core(write_module: Any, make_server: MakeServer) -> None:
    mod = write_module("requires_core = '<0.0.1'\n")
    with pytest.raises(PluginError, match=r"needs genro-asgi-core <0\.0\.1"):
        make_server({"plugins": {"old": {"module": mod}}})


# -- hook validation ----------------------------------------------------------------------------


SPECS = """
class AuditSpecs:
    @hookspec
    def audit_event(self, server, event):
        '''Something auditable happened.'''


class Emitter(Plugin):
    hookspecs = AuditSpecs

    @hookimpl
    async def genro_asgi_startup(self, server):
        await server.plugins.call("audit_event", server=server, event="booted")


class Listener(Plugin):
    @hookimpl
    def audit_event(self, event, server):
        record(server, ("heard", event))


class BadListener(Plugin):
    @hookimpl
    def audit_event(self, server, evnt):
        pass
"""


@pytest.mark.parametrize("listener_first", [False, True])
async def test_plugin_declared_hookspecs(write_module: Any, make_server: MakeServer,
                                         listener_first: bool) -> None:
    mod = write_module(SPECS)
    plugins = {"emitter": {"module": f"{mod}:Emitter"},
               "listener": {"module": f"{mod}:Listener"}}
    if listener_first:  # the impl is registered before anyone declared the spec
        plugins = dict(reversed(plugins.items()))
    server = make_server({"plugins": plugins, "watchdog": {"enabled": False}})
    await server.startup()
    await server.shutdown()
    assert calls(server) == [("heard", "booted")]


def test_impl_of_a_declared_hookspec_is_validated(write_module: Any, make_server: MakeServer
                                                  ) -> None:
    mod = write_module(SPECS)
    with pytest.raises(PluginError, match=r"(?s)'bad'.*evnt"):
        make_server({"plugins": {"emitter": {"module": f"{mod}:Emitter"},
                                 "bad": {"module": f"{mod}:BadListener"}}})


def test_impl_of_an_undeclared_hook_names_the_plugin(write_module: Any, make_server: MakeServer
                                                     ) -> None:
    mod = write_module(SPECS)
    with pytest.raises(PluginError) as info:
        make_server({"plugins": {"lonely": {"module": f"{mod}:Listener"}}})
    assert "'lonely'" in str(info.value)
    assert "audit_event" in str(info.value)


def test_wrong_argument_name_is_refused(write_module: Any, make_server: MakeServer) -> None:
    mod = write_module("""
        class Typo(Plugin):
            @hookimpl
            def genro_asgi_startup(self, srv):
                pass
    """)
    with pytest.raises(PluginError) as info:
        make_server({"plugins": {"typo": {"module": f"{mod}:Typo"}}})
    assert "'typo'" in str(info.value)
    assert "srv" in str(info.value)


@pytest.mark.parametrize("marker", ["hookwrapper=True", "wrapper=True"])
def test_hook_wrappers_are_refused(write_module: Any, make_server: MakeServer, marker: str
                                   ) -> None:
    mod = write_module(f"""
        class Wrapping(Plugin):
            @hookimpl({marker})
            def genro_asgi_startup(self, server):
                yield
    """)
    with pytest.raises(PluginError, match=r"plugin 'wrap'.*hook wrapper"):
        make_server({"plugins": {"wrap": {"module": f"{mod}:Wrapping"}}})


def test_async_impl_of_a_sync_construction_hook_is_refused(
        write_module: Any, make_server: MakeServer) -> None:
    mod = write_module("""
        class AsyncMount(Plugin):
            @hookimpl
            async def genro_asgi_mount(self, server):
                return {}
    """)
    with pytest.raises(PluginError, match=r"plugin 'am': genro_asgi_mount must not be async"):
        make_server({"plugins": {"am": {"module": f"{mod}:AsyncMount"}}})


def test_async_envelope_observer_is_refused(write_module: Any, make_server: MakeServer) -> None:
    mod = write_module("""
        class AsyncObserver(Plugin):
            @hookimpl
            async def genro_asgi_envelope_opened(self, envelope):
                pass
    """)
    with pytest.raises(PluginError, match=r"plugin 'obs'.*must not be async"):
        make_server({"plugins": {"obs": {"module": f"{mod}:AsyncObserver"}}})


def test_failing_configure_names_the_plugin(write_module: Any, make_server: MakeServer) -> None:
    mod = write_module("""
        class Bad(Plugin):
            @hookimpl
            def genro_asgi_configure(self, server):
                raise KeyError("missing-thing")
    """)
    with pytest.raises(PluginError, match=r"plugin 'bad' failed in genro_asgi_configure.*"
                                          r"missing-thing"):
        make_server({"plugins": {"bad": {"module": f"{mod}:Bad"}}})


# -- ordering and calling -----------------------------------------------------------------------


async def test_order_config_then_tryfirst_trylast_then_name(
        write_module: Any, make_server: MakeServer) -> None:
    mod = write_module(RECORDER)
    spec = {  # deliberately listed in none of the expected orders
        "zz_plain": "Recorder", "cc_last_ordered": ("Last", 1), "bb_first": "First",
        "aa_plain": "Recorder", "dd_last": "Last", "yy_ordered": ("Recorder", 2),
        "ee_first": "First", "ff_first_ordered": ("First", 3),
    }
    plugins: dict[str, Any] = {}
    for name, what in spec.items():
        cls, order = what if isinstance(what, tuple) else (what, None)
        plugins[name] = {"module": f"{mod}:{cls}", "label": name}
        if order is not None:
            plugins[name]["order"] = order
    server = make_server({"plugins": plugins, "watchdog": {"enabled": False}})
    await server.startup()
    started = [label for kind, label in calls(server) if kind == "start"]
    assert started == ["cc_last_ordered", "yy_ordered", "ff_first_ordered",  # config order
                       "bb_first", "ee_first",  # tryfirst, by name
                       "aa_plain", "zz_plain",  # unmarked, by name
                       "dd_last"]  # trylast
    await server.shutdown()
    stopped = [label for kind, label in calls(server) if kind == "stop"]
    # only Recorder has a shutdown hook: reverse of its startup order
    assert stopped == ["zz_plain", "aa_plain", "yy_ordered"]


async def test_async_and_sync_impls_are_all_run(write_module: Any, make_server: MakeServer
                                                ) -> None:
    mod = write_module("""
        class Mixed(Plugin):
            @hookimpl
            async def genro_asgi_startup(self, server):
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                record(server, "async startup finished")

            @hookimpl
            async def genro_asgi_shutdown(self, server):
                await asyncio.sleep(0)
                record(server, "async shutdown finished")

        class Plain(Plugin):
            @hookimpl
            def genro_asgi_startup(self, server):
                record(server, "sync startup")

            @hookimpl
            def genro_asgi_shutdown(self, server):
                record(server, "sync shutdown")
    """)
    server = make_server({"plugins": {"a": {"module": f"{mod}:Mixed"},
                                      "b": {"module": f"{mod}:Plain"}},
                          "watchdog": {"enabled": False}})
    await server.startup()
    assert calls(server) == ["async startup finished", "sync startup"]
    await server.shutdown()
    assert calls(server)[2:] == ["sync shutdown", "async shutdown finished"]


async def test_call_collects_results_and_isolates_failures(
        write_module: Any, make_server: MakeServer, caplog: pytest.LogCaptureFixture) -> None:
    mod = write_module("""
        class AuditSpecs:
            @hookspec
            def audit_collect(self, server):
                pass

        class Owner(Plugin):
            hookspecs = AuditSpecs

        class Good(Plugin):
            @hookimpl
            async def audit_collect(self):
                return "good"

        class Bad(Plugin):
            @hookimpl
            def audit_collect(self, server):
                raise RuntimeError("bad collector")
    """)
    server = make_server({"plugins": {"owner": {"module": f"{mod}:Owner"},
                                      "a_bad": {"module": f"{mod}:Bad"},
                                      "b_good": {"module": f"{mod}:Good"}}})
    with caplog.at_level(logging.ERROR, logger="genro_asgi.plugins"):
        assert await server.plugins.call("audit_collect", strict=False, server=server) == ["good"]
    assert any("'a_bad' failed in audit_collect" in r.getMessage() for r in caplog.records)
    with pytest.raises(PluginError, match=r"plugin 'a_bad' failed in audit_collect"):
        await server.plugins.call("audit_collect", server=server)


# -- startup failures ---------------------------------------------------------------------------


FAILING = """
class Ok(Plugin):
    @hookimpl
    def genro_asgi_startup(self, server):
        record(server, ("start", self.config["label"]))

    @hookimpl
    async def genro_asgi_shutdown(self, server):
        record(server, ("stop", self.config["label"]))


class Fails(Plugin):
    @hookimpl
    async def genro_asgi_startup(self, server):
        raise ConnectionError("database unreachable")

    @hookimpl
    def genro_asgi_shutdown(self, server):
        record(server, ("stop", "fails"))
"""


async def test_failing_startup_names_plugin_and_rolls_back(
        write_module: Any, make_server: MakeServer) -> None:
    mod = write_module(FAILING)
    server = make_server({"plugins": {"a": {"module": f"{mod}:Ok", "label": "a"},
                                      "b": {"module": f"{mod}:Fails"},
                                      "c": {"module": f"{mod}:Ok", "label": "c"}}})
    with pytest.raises(StartupError) as info:
        await server.startup()
    assert "plugin 'b'" in str(info.value)
    assert "database unreachable" in str(info.value)
    # a started and was stopped; b never started so is not stopped; c never ran
    assert calls(server) == [("start", "a"), ("stop", "a")]
    assert server.started is False
    assert server.watchdog._task is None


async def test_failing_startup_through_lifespan(write_module: Any, make_server: MakeServer
                                                ) -> None:
    mod = write_module(FAILING)
    server = make_server({"plugins": {"a": {"module": f"{mod}:Ok", "label": "a"},
                                      "b": {"module": f"{mod}:Fails"}}})
    client = AsyncTestClient(server)
    with pytest.raises(RuntimeError, match=r"startup failed in plugin 'b'"):
        await client.__aenter__()
    await client.aclose()
    assert calls(server) == [("start", "a"), ("stop", "a")]


# -- request-time isolation ---------------------------------------------------------------------


def test_failing_envelope_observers_are_logged_and_request_answers(
        write_module: Any, make_server: MakeServer, make_client: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    mod = write_module(API_APP, """
        class Flaky(Plugin):
            @hookimpl
            def genro_asgi_envelope_opened(self, envelope):
                raise RuntimeError("opened broke")

            @hookimpl
            def genro_asgi_envelope_closed(self, server, envelope):
                raise RuntimeError("closed broke")

        class Healthy(Plugin):
            @hookimpl
            def genro_asgi_envelope_closed(self, server, envelope):
                record(server, ("closed", envelope.status))
    """)
    server = make_server({"apps": {"api": {"module": f"{mod}:Api"}},
                          "plugins": {"flaky": {"module": f"{mod}:Flaky"},
                                      "healthy": {"module": f"{mod}:Healthy"}}})
    client = make_client(server)
    with caplog.at_level(logging.ERROR, logger="genro_asgi.envelope"):
        response = client.get("/api/hello")
    assert response.status_code == 200
    assert response.json() == {"hello": "world"}
    messages = [r.getMessage() for r in caplog.records if r.name == "genro_asgi.envelope"]
    assert any("'flaky' failed in envelope_opened" in m for m in messages)
    assert any("'flaky' failed in envelope_closed" in m for m in messages)
    assert calls(server) == [("closed", 200)]  # the next observer still ran
    assert len(server.envelopes) == 0


def test_failing_exception_response_impl_falls_through_to_errors(
        write_module: Any, make_server: MakeServer, make_client: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    mod = write_module(API_APP, """
        class Broken(Plugin):
            @hookimpl
            def genro_asgi_exception_response(self, request, exc):
                raise RuntimeError("renderer broke")
    """)
    server = make_server({"apps": {"api": {"module": f"{mod}:Api"}},
                          "plugins": {"broken": {"module": f"{mod}:Broken"}}})
    client = make_client(server)
    with caplog.at_level(logging.ERROR):
        response = client.get("/api/boom")
    assert response.status_code == 500
    assert response.json()["error"]["message"] == "Internal Server Error"
    assert any(r.name == "genro_asgi.plugins"
               and "'broken' failed in genro_asgi_exception_response" in r.getMessage()
               for r in caplog.records)


def test_failing_plugin_middleware_still_answers(write_module: Any, make_server: MakeServer,
                                                 make_client: Any) -> None:
    mod = write_module(API_APP, """
        class BadMiddleware(Plugin):
            @hookimpl
            def genro_asgi_middleware(self, server):
                def factory(app):
                    async def middleware(scope, receive, send):
                        raise RuntimeError("middleware broke")
                    return middleware
                return factory
    """)
    server = make_server({"apps": {"api": {"module": f"{mod}:Api"}},
                          "plugins": {"badmw": {"module": f"{mod}:BadMiddleware"}}})
    response = make_client(server).get("/api/hello")
    assert response.status_code == 500
    assert "error_id" in response.json()["error"]
    assert len(server.envelopes) == 0


# -- the core hooks -----------------------------------------------------------------------------


MIDDLEWARE = API_APP + """
class Tagger(Plugin):
    @hookimpl
    def genro_asgi_middleware(self, server):
        label = self.config["label"]

        def factory(app):
            async def middleware(scope, receive, send):
                record(server, ("in", label, "genro.envelope" in scope))

                async def tagged_send(message):
                    if message["type"] == "http.response.start":
                        message["headers"] = [*message.get("headers", []),
                                              (b"x-chain", label.encode())]
                    await send(message)

                await app(scope, receive, tagged_send)
                record(server, ("out", label))
            return middleware
        return factory
"""


def test_middleware_factories_wrap_in_plugin_order(write_module: Any, make_server: MakeServer,
                                                   make_client: Any) -> None:
    mod = write_module(MIDDLEWARE)
    server = make_server({"apps": {"api": {"module": f"{mod}:Api"}}, "plugins": {
        "a_tag": {"module": f"{mod}:Tagger", "label": "third", "order": 3},
        "b_tag": {"module": f"{mod}:Tagger", "label": "first", "order": 1},
        "c_tag": {"module": f"{mod}:Tagger", "label": "second", "order": 2},
    }})
    response = make_client(server).get("/api/hello")
    assert response.status_code == 200
    assert calls(server) == [("in", "first", True), ("in", "second", True),
                             ("in", "third", True),
                             ("out", "third"), ("out", "second"), ("out", "first")]
    # the response passes the innermost first on its way out
    assert response.headers.get_list("x-chain") == ["third", "second", "first"]


def test_middleware_is_compiled_once(write_module: Any, make_server: MakeServer,
                                     make_client: Any) -> None:
    mod = write_module(API_APP, """
        class Counting(Plugin):
            @hookimpl
            def genro_asgi_middleware(self, server):
                record(server, "factory requested")
                return lambda app: app
    """)
    server = make_server({"apps": {"api": {"module": f"{mod}:Api"}},
                          "plugins": {"count": {"module": f"{mod}:Counting"}}})
    client = make_client(server)
    for _ in range(3):
        assert client.get("/api/hello").status_code == 200
    assert calls(server) == ["factory requested"]


def test_mount_hook_adds_routes_and_asgi_apps(write_module: Any, make_server: MakeServer,
                                              make_client: Any) -> None:
    mod = write_module("""
        class Extra(AsgiApplication):
            @route()
            def ping(self):
                return {"pong": self.name, "prefix": self.prefix}

        async def raw_app(scope, receive, send):
            text = f"root={scope['root_path']} path={scope['path']}"
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": text.encode()})

        class Mounter(Plugin):
            @hookimpl
            def genro_asgi_mount(self, server):
                return {"/extra": Extra(), "/raw": raw_app}
    """)
    server = make_server({"plugins": {"mounter": {"module": f"{mod}:Mounter"}}})
    assert {"extra", "raw"} <= set(server.apps)
    client = make_client(server)
    assert client.get("/extra/ping").json() == {"pong": "extra", "prefix": "/extra"}
    assert client.get("/raw/some/where").text == "root=/raw path=/some/where"
    assert client.get("/nothing").status_code == 404


def test_configure_is_called_once_after_config_apps(
        write_module: Any, make_server: MakeServer, make_client: Any) -> None:
    mod = write_module(API_APP, """
        class Configurer(Plugin):
            @hookimpl
            def genro_asgi_configure(self, server):
                record(server, ("configure", sorted(server.apps)))
    """)
    server = make_server({"apps": {"api": {"module": f"{mod}:Api"}},
                          "plugins": {"conf": {"module": f"{mod}:Configurer"}}})
    client = make_client(server)
    client.get("/api/hello")
    client.get("/api/hello")
    assert calls(server) == [("configure", ["api"])]


def test_envelope_observers_receive_the_envelope(
        write_module: Any, make_server: MakeServer, make_client: Any) -> None:
    mod = write_module(API_APP, """
        class Observer(Plugin):
            @hookimpl
            def genro_asgi_envelope_opened(self, server, envelope):
                record(server, ("opened", envelope.path, envelope.status,
                                envelope in list(server.envelopes)))

            @hookimpl
            def genro_asgi_envelope_closed(self, server, envelope):
                record(server, ("closed", envelope.path, envelope.status, envelope.route,
                                envelope in list(server.envelopes)))
    """)
    bare = write_module("""
        SEEN = []

        @hookimpl
        def genro_asgi_envelope_closed(envelope):
            SEEN.append((envelope.path, envelope.status))
    """, stem="bare")
    server = make_server({"apps": {"api": {"module": f"{mod}:Api"}},
                          "plugins": {"observer": {"module": f"{mod}:Observer"},
                                      "bare": {"module": bare}}})
    client = make_client(server)
    assert client.get("/api/hello").status_code == 200
    assert client.get("/api/teapot").status_code == 418
    assert calls(server) == [
        ("opened", "/api/hello", None, True), ("closed", "/api/hello", 200, "/api/hello", False),
        ("opened", "/api/teapot", None, True),
        ("closed", "/api/teapot", 418, "/api/teapot", False),
    ]
    assert importlib.import_module(bare).SEEN == [("/api/hello", 200), ("/api/teapot", 418)]
    # an impl declaring only ``envelope`` is called as is, without a wrapper
    assert dict(server.compiled.envelope_closed)["bare"] is importlib.import_module(
        bare).genro_asgi_envelope_closed


def test_hooks_without_impls_compile_to_nothing(make_server: MakeServer) -> None:
    server = make_server()
    assert list(server.plugins.names()) == ["errors"]
    assert server.compiled.envelope_opened == ()
    assert server.compiled.envelope_closed == ()
    assert server.watchdog.stuck == ()
    app = server.build()
    assert app.opened == () and app.closed == ()
    assert app.app is server._dispatcher  # no middleware layer at all


def test_requests_do_not_touch_pluggy(write_module: Any, make_server: MakeServer,
                                      make_client: Any) -> None:
    mod = write_module(MIDDLEWARE, """
        class Observer(Plugin):
            @hookimpl
            def genro_asgi_envelope_opened(self, server, envelope):
                record(server, "opened")
    """)
    server = make_server({"apps": {"api": {"module": f"{mod}:Api"}},
                          "plugins": {"tag": {"module": f"{mod}:Tagger", "label": "t"},
                                      "observer": {"module": f"{mod}:Observer"}}})
    client = make_client(server)

    class Untouchable:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"pluggy used per request: {name}")

    pm, server.plugins.pm = server.plugins.pm, Untouchable()  # type: ignore[assignment]
    try:
        response = client.get("/api/hello")
    finally:
        server.plugins.pm = pm  # shutdown may use it again
    assert response.status_code == 200
    assert response.headers["x-chain"] == "t"
    assert "opened" in calls(server)


# -- the errors plugin --------------------------------------------------------------------------


@pytest.fixture
def api_server(write_module: Any, make_server: MakeServer) -> Callable[..., AsgiServer]:
    mod = write_module(API_APP)

    def build(**errors: Any) -> AsgiServer:
        return make_server({"apps": {"api": {"module": f"{mod}:Api"}},
                            "plugins": {"errors": errors}})

    return build


def test_errors_json_by_default_with_error_id_in_log(
        api_server: Callable[..., AsgiServer], make_client: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    client = make_client(api_server())
    with caplog.at_level(logging.ERROR, logger="genro_asgi.errors"):
        response = client.get("/api/boom", headers={"x-request-id": "req-42"})
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["status"] == 500
    assert error["message"] == "Internal Server Error"
    assert error["request_id"] == "req-42"
    assert "traceback" not in error
    assert "kaboom-detail" not in response.text  # no internals leak by default
    error_id = error["error_id"]
    assert len(error_id) == 8
    logged = [r for r in caplog.records if r.name == "genro_asgi.errors"]
    assert len(logged) == 1
    assert f"error_id={error_id}" in logged[0].getMessage()
    assert "request_id=req-42" in logged[0].getMessage()
    assert logged[0].exc_info is not None  # the traceback goes to the log


def test_error_ids_differ_per_error(api_server: Callable[..., AsgiServer], make_client: Any
                                    ) -> None:
    client = make_client(api_server())
    ids = {client.get("/api/boom").json()["error"]["error_id"] for _ in range(5)}
    assert len(ids) == 5


@pytest.mark.parametrize(("accept", "html"), [
    ("text/html", True),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),
    ("text/html, application/json", True),
    ("application/json, text/html", False),
    ("application/json", False),
    ("*/*", False),
])
def test_errors_html_or_json_by_accept(api_server: Callable[..., AsgiServer], make_client: Any,
                                       accept: str, html: bool) -> None:
    response = make_client(api_server()).get("/api/boom", headers={"accept": accept})
    assert response.status_code == 500
    if html:
        assert response.headers["content-type"].startswith("text/html")
        assert "<h1>500 Internal Server Error</h1>" in response.text
        assert "error_id: <code>" in response.text
    else:
        assert response.json()["error"]["status"] == 500


def test_traceback_only_when_configured(api_server: Callable[..., AsgiServer], make_client: Any
                                        ) -> None:
    client = make_client(api_server(show_traceback=True))
    error = client.get("/api/boom").json()["error"]
    assert "ValueError: kaboom-detail" in "".join(error["traceback"])
    page = client.get("/api/boom", headers={"accept": "text/html"}).text
    assert "<pre>" in page and "kaboom-detail" in page
    # HTTP errors are not bugs: no traceback even in development
    assert "traceback" not in client.get("/api/teapot").json()["error"]
    plain = make_client(api_server())
    assert "<pre>" not in plain.get("/api/boom", headers={"accept": "text/html"}).text


def test_http_exception_keeps_status_detail_and_headers(
        api_server: Callable[..., AsgiServer], make_client: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    client = make_client(api_server())
    with caplog.at_level(logging.WARNING, logger="genro_asgi.errors"):
        response = client.get("/api/teapot")
        not_allowed = client.post("/api/only_get")
    assert response.status_code == 418
    assert response.headers["x-tea"] == "earl grey"
    assert response.json()["error"]["message"] == "short and stout"
    assert not_allowed.status_code == 405
    assert not_allowed.headers["allow"] == "GET, HEAD"
    assert not [r for r in caplog.records if r.name == "genro_asgi.errors"]  # 4xx not logged


def test_client_errors_logged_when_configured(
        api_server: Callable[..., AsgiServer], make_client: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    client = make_client(api_server(log_client_errors=True))
    with caplog.at_level(logging.WARNING, logger="genro_asgi.errors"):
        error_id = client.get("/api/teapot").json()["error"]["error_id"]
    assert any(f"error_id={error_id}" in r.getMessage() and "418" in r.getMessage()
               for r in caplog.records if r.name == "genro_asgi.errors")


def test_custom_exception_response_wins_over_errors(
        write_module: Any, make_server: MakeServer, make_client: Any) -> None:
    mod = write_module(API_APP, """
        class Custom(Plugin):
            @hookimpl
            async def genro_asgi_exception_response(self, server, request, exc):
                await asyncio.sleep(0)
                if isinstance(exc, ValueError):
                    return PlainTextResponse(f"custom: {exc} on {request.path}",
                                             status_code=422)
                return None
    """)
    server = make_server({"apps": {"api": {"module": f"{mod}:Api"}},
                          "plugins": {"custom": {"module": f"{mod}:Custom"}}})
    client = make_client(server)
    response = client.get("/api/boom")
    assert response.status_code == 422
    assert response.text == "custom: kaboom-detail on /api/boom"
    # anything the custom handler declines still reaches errors
    teapot = client.get("/api/teapot")
    assert teapot.status_code == 418
    assert teapot.json()["error"]["message"] == "short and stout"


def test_bare_500_when_no_plugin_renders(write_module: Any, make_server: MakeServer,
                                         make_client: Any,
                                         caplog: pytest.LogCaptureFixture) -> None:
    mod = write_module(API_APP, """
        class Broken(Plugin):
            @hookimpl(tryfirst=True)
            def genro_asgi_exception_response(self, request, exc):
                raise RuntimeError("renderer broke")
    """)
    server = make_server({"apps": {"api": {"module": f"{mod}:Api"}},
                          "plugins": {"broken": {"module": f"{mod}:Broken"}}})
    client = make_client(server)
    # take errors out of the chain: only the broken renderer is left
    server.plugins.pm.unregister(name="errors")
    with caplog.at_level(logging.ERROR):
        response = client.get("/api/boom")
    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    assert any("no plugin rendered" in r.getMessage() for r in caplog.records)


# -- tracing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("trace", [True, False])
def test_trace_hooks_logs_every_hook_call(write_module: Any, make_server: MakeServer,
                                          caplog: pytest.LogCaptureFixture,
                                          trace: bool) -> None:
    mod = write_module(API_APP, """
        class Traced(Plugin):
            @hookimpl
            def genro_asgi_configure(self, server):
                pass

            @hookimpl
            async def genro_asgi_startup(self, server):
                pass

            @hookimpl
            def genro_asgi_shutdown(self):
                pass

            @hookimpl
            def genro_asgi_envelope_opened(self, envelope):
                pass

            @hookimpl
            def genro_asgi_envelope_closed(self, server, envelope):
                pass
    """)
    with caplog.at_level(logging.INFO, logger="genro_asgi.plugins"):
        server = make_server({"apps": {"api": {"module": f"{mod}:Api"}},
                              "logging": {"trace_hooks": trace},
                              "plugins": {"traced": {"module": f"{mod}:Traced"}}})
        with TestClient(server) as client:
            client.get("/api/hello")
            client.get("/api/boom")
    traced = [r.getMessage() for r in caplog.records
              if r.name == "genro_asgi.plugins" and r.getMessage().startswith("hook ")]
    if not trace:
        assert traced == []
        return
    hooks = [line.split(" (")[0] for line in traced]
    assert "hook genro_asgi_configure -> traced" in hooks
    assert "hook genro_asgi_startup -> traced" in hooks
    assert "hook genro_asgi_shutdown -> traced" in hooks
    assert hooks.count("hook genro_asgi_envelope_opened -> traced") == 2
    assert hooks.count("hook genro_asgi_envelope_closed -> traced") == 2
    assert "hook genro_asgi_exception_response -> errors" in hooks
    assert all(line.endswith(" ms)") for line in traced)
