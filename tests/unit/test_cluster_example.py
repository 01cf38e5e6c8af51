"""examples/cluster/ against the configuration contract (docs/cluster.md, "Running
it"). The suite cannot start Docker, so these tests read the files: compose.yaml
(PyYAML), the Caddyfile, and config.yaml through the bridge's own reader with the
environment compose gives the bridges."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from bridge.config import Config, ConfigReport, check_config
from bridge.matrix.registration import build_registration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cluster"
CONFIG_IN_CONTAINER = "/etc/zapbridge/config.yaml"
APPSERVICES_IN_SYNAPSE = "/data/appservices"  # where Synapse's image finds registrations
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?[?-][^}]*)?\}")
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD")


# --- reading the files -----------------------------------------------------------------


def compose() -> dict[str, Any]:
    data = yaml.safe_load((EXAMPLE / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    return dict(compose()["services"])


SLACK_PREFIXES = {"SLACK_BOT_TOKEN": "xoxb-", "SLACK_APP_TOKEN": "xapp-"}


def dummy_for(name: str) -> str:
    """What a filled-in .env would hold for ``name``: hex, as the README asks, after
    the prefix Slack gives its tokens."""
    prefix = next((p for key, p in SLACK_PREFIXES.items() if name.endswith(key)), "")
    return f"{prefix}{name.lower().encode().hex()}0123456789"


def interpolated(value: str) -> str:
    """``value`` as compose gives it, with every ``${VAR…}`` from a filled-in .env."""
    return INTERPOLATION.sub(lambda m: dummy_for(m.group(1)), value)


def bridge_services() -> dict[str, dict[str, Any]]:
    """The services that run the bridge: ``python -m bridge run``."""
    return {
        name: service
        for name, service in services().items()
        if service.get("command", [])[:4] == ["python", "-m", "bridge", "run"]
    }


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    return {key: interpolated(str(value)) for key, value in service["environment"].items()}


def mounts_of(service: dict[str, Any]) -> dict[str, str]:
    """``target -> source`` of a service's volumes (``source:target[:ro]``)."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        found[target] = source
    return found


def report() -> ConfigReport:
    (one, *_) = bridge_services().values()
    return check_config(EXAMPLE / "config.yaml", env=environment_of(one))


def config() -> Config:
    loaded = report().config
    assert loaded is not None, [str(p) for p in report().errors]
    return loaded


@dataclass
class Block:
    """A Caddyfile directive, with its block when it has one."""

    words: list[str]
    children: list[Block] = field(default_factory=list)

    def find(self, first: str) -> list[Block]:
        return [child for child in self.children if child.words[:1] == [first]]


def caddyfile() -> Block:
    """The Caddyfile as nested blocks (the subset of the syntax it uses)."""
    root = Block(["(file)"])
    stack = [root]
    for raw in (EXAMPLE / "Caddyfile").read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line == "}":
            stack.pop()
            continue
        words = line.split()
        opens = words[-1] == "{"
        block = Block(words[:-1] if opens else words)
        stack[-1].children.append(block)
        if opens:
            stack.append(block)
    assert stack == [root], "unbalanced braces"
    return root


def site_routes() -> dict[str, tuple[str, Block]]:
    """``path -> (site address, reverse_proxy block)`` of every ``handle PATH``."""
    routes = {}
    for site in caddyfile().children:
        if not site.words or not site.words[0].startswith(":"):
            continue  # the global options block
        for handle in site.find("handle"):
            proxies = handle.find("reverse_proxy")
            if len(handle.words) == 2 and proxies:
                routes[handle.words[1]] = (site.words[0], proxies[0])
    return routes


def upstreams(proxy: Block) -> set[str]:
    return set(proxy.words[1:])


def option(proxy: Block, name: str) -> str | None:
    found = proxy.find(name)
    return found[0].words[1] if found else None


# --- the tests -------------------------------------------------------------------------


def test_the_config_is_valid_with_the_environment_compose_gives() -> None:
    found = report()
    assert [str(p) for p in found.errors] == []
    assert [str(p) for p in found.warnings] == []


def test_the_instances_share_the_cluster_on_postgresql() -> None:
    cfg = config()
    assert cfg.cluster.enabled is True  # type: ignore[attr-defined]
    url = urlsplit(cfg.database.resolved_url)
    assert url.scheme in ("postgres", "postgresql")
    assert url.hostname in services()
    assert str(services()[url.hostname]["image"]).startswith("postgres:")
    init = (EXAMPLE / "postgres" / "init.sh").read_text(encoding="utf-8")
    assert f"CREATE ROLE {url.username} LOGIN" in init
    assert f"CREATE DATABASE {url.path.strip('/')} OWNER {url.username}" in init


def test_two_bridge_services_run_the_same_config_and_database() -> None:
    bridges = bridge_services()
    assert len(bridges) == 2
    for service in bridges.values():
        assert service["command"] == ["python", "-m", "bridge", "run", "-c", CONFIG_IN_CONTAINER]
        assert mounts_of(service)[CONFIG_IN_CONTAINER] == "./config.yaml"
        assert (EXAMPLE / "config.yaml").is_file()
        assert service["build"]["context"] == "../.."
        assert (EXAMPLE / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        assert {"postgres", "synapse"} <= set(service["depends_on"])
    (first, second) = bridges.values()
    assert environment_of(first) == environment_of(second)
    assert "ZAPBRIDGE_DATABASE_URL" in environment_of(first)
    hostnames = {service["hostname"] for service in bridges.values()}
    assert hostnames == set(bridges)  # a holder or owner is named by its service


def test_each_instance_has_its_own_data_dir_and_they_share_the_media_store() -> None:
    data_dir = str(config().data_path)
    media = f"{data_dir}/media"
    bridges = list(bridge_services().values())
    data_volumes = [mounts_of(service)[data_dir] for service in bridges]
    assert len(set(data_volumes)) == len(bridges)  # the journal is one process's
    assert {mounts_of(service)[media] for service in bridges} == {"media"}
    assert set(data_volumes) | {"media"} <= set(compose()["volumes"])


def test_the_bridges_listen_where_the_proxy_sends() -> None:
    cfg = config()
    assert cfg.http.host == "0.0.0.0"
    assert cfg.appservice.hostname == "0.0.0.0"
    names = set(bridge_services())
    routes = site_routes()
    for path in ("/slack/events", "/cloud/webhook"):
        _, proxy = routes[path]
        assert upstreams(proxy) == {f"{name}:{cfg.http.port}" for name in names}, path
        assert option(proxy, "health_uri") == "/health"
        assert option(proxy, "health_port") in (None, str(cfg.http.port))
    _, proxy = routes["/_matrix/app/*"]
    assert upstreams(proxy) == {f"{name}:{cfg.appservice.port}" for name in names}
    assert option(proxy, "health_uri") == "/health"
    assert option(proxy, "health_port") == str(cfg.http.port)  # /health is on http.port


def test_synapse_reaches_the_appservice_through_the_proxy() -> None:
    cfg = config()
    address = urlsplit(cfg.appservice.address)
    assert address.hostname == "proxy"
    assert str(services()["proxy"]["image"]).startswith("caddy:")
    site, _ = site_routes()["/_matrix/app/*"]
    assert site == f":{address.port}"
    assert build_registration(cfg)["url"] == cfg.appservice.address
    published = [str(port) for port in services()["proxy"]["ports"]]
    assert not [port for port in published if port.endswith(f":{address.port}")]  # internal
    slack_site, _ = site_routes()["/slack/events"]
    assert [port for port in published if port.endswith(f"{slack_site}")]  # public


def test_synapse_loads_the_registration_of_this_config() -> None:
    cfg = config()
    all_services = services()
    writers = [
        (name, service)
        for name, service in all_services.items()
        if "generate-registration" in " ".join(map(str, service.get("command", [])))
    ]
    assert len(writers) == 1
    name, writer = writers[0]
    words = " ".join(map(str, writer["command"])).split()
    command = words[words.index("generate-registration") :]
    assert command[command.index("-c") + 1] == CONFIG_IN_CONTAINER
    assert mounts_of(writer)[CONFIG_IN_CONTAINER] == "./config.yaml"
    output = Path(command[command.index("-o") + 1])
    assert output.suffix == ".yaml"
    volume = mounts_of(writer)[str(output.parent)]
    synapse = all_services["synapse"]
    assert mounts_of(synapse)[APPSERVICES_IN_SYNAPSE] == volume
    assert mounts_of(all_services["synapse-config"])[APPSERVICES_IN_SYNAPSE] == volume
    assert synapse["environment"]["SYNAPSE_SERVER_NAME"] == cfg.homeserver.domain
    homeserver = urlsplit(cfg.homeserver.address)
    assert homeserver.hostname == "synapse" and homeserver.port == 8008
    for bridge in bridge_services().values():
        assert bridge["depends_on"]["setup"]["condition"] == "service_completed_successfully"
    assert name == "setup"
    registration = build_registration(cfg)
    assert registration["as_token"] == dummy_for("ZAPBRIDGE_AS_TOKEN")  # from .env


def test_no_secret_is_written_in_clear() -> None:
    cfg = config()
    given = {dummy_for(m) for m in INTERPOLATION.findall((EXAMPLE / "compose.yaml").read_text())}
    secrets = [s for s in cfg.secrets() if s]
    assert secrets and all(any(d in s for d in given) for s in secrets)  # all from .env
    texts = {
        path.name: path.read_text(encoding="utf-8")
        for path in EXAMPLE.rglob("*")
        if path.is_file() and path.name != ".env"
    }
    for name, text in texts.items():
        assert not [s for s in secrets if s in text], name
    raw = yaml.safe_load(texts["config.yaml"])
    assert urlsplit(raw["database"]["url"]).password is None
    for section, keys in {
        "appservice": ("as_token", "hs_token"),
        "slack": ("bot_token", "app_token", "signing_secret"),
    }.items():
        assert not set(keys) & set(raw.get(section) or {}), section
    for service_name, service in services().items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key) or key.endswith("_URL"):
                in_url = re.fullmatch(r"\w+://[^:@/]+:(.+)@[^@]+", str(value))
                password = in_url.group(1) if in_url else str(value)
                assert INTERPOLATION.fullmatch(password), (service_name, key)


def test_the_env_example_names_every_variable_and_holds_no_value() -> None:
    lines = [
        line
        for line in (EXAMPLE / ".env.example").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    names = {line.split("=", 1)[0] for line in lines}
    assert all(line.endswith("=") for line in lines)
    used = set(INTERPOLATION.findall((EXAMPLE / "compose.yaml").read_text(encoding="utf-8")))
    assert used == names
    assert (EXAMPLE / ".gitignore").read_text(encoding="utf-8").split() == [".env"]


@pytest.mark.parametrize("path", ["/_matrix/app/*", "/slack/events", "/cloud/webhook"])
def test_the_caddyfile_reader_finds_each_route(path: str) -> None:
    """The reader these tests rely on sees the routes (and would miss a renamed one)."""
    site, proxy = site_routes()[path]
    assert site.startswith(":") and proxy.words[0] == "reverse_proxy"
    assert "/slack/event" not in site_routes()
