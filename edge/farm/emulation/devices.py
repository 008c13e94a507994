"""The device catalog (`edge/data/catalog.toml`): phone profiles, network profiles, CPU calibration.

An emulated phone is this machine's Chromium with the phone's Playwright descriptor (screen, user
agent, touch), its core count (`Emulation.setHardwareConcurrencyOverride`) and its CPU speed
(`Emulation.setCPUThrottlingRate`). The rate is calibrated as Lighthouse does: the host's score on
a fixed JavaScript workload (`HOST_BENCHMARK_JS`, measured in the page) divided by the phone's
estimated score on the same workload (`benchmark_index`). A profile may instead give a fixed
`cpu_slowdown`. A host slower than the phone cannot emulate it: the factor is clamped to 1 and the
calibration carries a warning.

`load_catalog` validates everything and raises `CatalogError` naming the file, the profile (or
network) and the field, and what is allowed.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.data import data_path
from edge.errors import EdgeError
from edge.text import display_path as _display
from edge.text import show_value as _show

DEFAULT_CATALOG = data_path("catalog.toml")

TIERS = ("low", "mid", "high", "flagship", "host")
HOST_TIER = "host"
#: A real device's endpoint schemes: each has a connect function in edge.farm.runners.endpoints.
#: ``grid+http(s)://`` is a Selenium Grid 4 hub (a session there, driven over its ``se:cdp``).
ENDPOINT_SCHEMES = ("http://", "https://", "ws://", "wss://", "grid+http://", "grid+https://")
GRID_SCHEMES = ("grid+http://", "grid+https://")


@dataclass(frozen=True)
class Farm:
    """How a cloud farm's Playwright endpoint takes its capabilities: URL-encoded JSON in the
    query parameter `param`, with the user name and access key at the key paths `user` and
    `key` of that JSON (filled from the environment at connect time, never from the catalog)."""
    name: str
    param: str
    user: tuple[str, ...]
    key: tuple[str, ...]


#: Cloud farms whose Playwright endpoint (``wss://…``) takes capabilities in its URL, as their
#: documentation gives it: BrowserStack ``wss://cdp.browserstack.com/playwright?caps=…`` and
#: LambdaTest ``wss://cdp.lambdatest.com/playwright?capabilities=…``.
FARMS = {
    "browserstack": Farm("browserstack", "caps", ("browserstack.username",),
                         ("browserstack.accessKey",)),
    "lambdatest": Farm("lambdatest", "capabilities", ("LT:Options", "user"),
                       ("LT:Options", "accessKey")),
}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
#: An adb serial (USB: letters, digits, '.', '-', '_') or host:port for `adb connect`.
_ADB_SERIAL = re.compile(r"^[A-Za-z0-9._-]+(?::\d{1,5})?$")

#: The workload whose score is the "benchmark index", as a function expression for Playwright's
#: `page.evaluate(HOST_BENCHMARK_JS)` (or `page.evaluate(HOST_BENCHMARK_JS, ms)`). It is the method
#: of Lighthouse's BenchmarkIndex (core/lib/page-functions.js `computeBenchmarkIndex`, also used by
#: DevTools' CPU calibration), so catalog indices and Lighthouse's published device ranges share a
#: scale: half the time building a 10,000-character string over and over (allocation and GC),
#: half copying 100,000 small integers between two arrays (no allocation); each half's score is
#: passes per second divided by 10, and the index is their mean. Deterministic work, timed by
#: wall clock after a 40 ms warm-up; `ms` (default 400) is the timed duration. A high-end desktop
#: scores ~1500-2000. It is noisy on a busy host: take the median of a few runs.
HOST_BENCHMARK_JS = """(ms = 400) => {
  const half = Math.max(50, ms / 2);
  const strings = (limit) => {
    const t0 = Date.now();
    let n = 0;
    while (Date.now() - t0 < limit) {
      let s = '';
      for (let i = 0; i < 10000; i++) s += 'a';
      if (s.length !== 10000) throw new Error('unreachable: keeps the loop alive');
      n++;
    }
    return n / 10 / ((Date.now() - t0) / 1000);
  };
  const a = [], b = [];
  for (let i = 0; i < 100000; i++) { a[i] = i; b[i] = i; }
  const arrays = (limit) => {
    const t0 = Date.now();
    let n = 0;
    // Read the clock every 10th pass only (Lighthouse's workaround for a V8/Intel JCC cliff).
    while (n % 10 !== 0 || Date.now() - t0 < limit) {
      const src = n % 2 === 0 ? a : b, dst = n % 2 === 0 ? b : a;
      for (let i = 0; i < src.length; i++) dst[i] = src[i];
      n++;
    }
    return n / 10 / ((Date.now() - t0) / 1000);
  };
  strings(20); arrays(20);  // warm-up: let the JIT compile both loops before timing
  return Math.round((strings(half) + arrays(half)) / 2);
}"""


class CatalogError(EdgeError, ValueError):
    """The catalog is unreadable or invalid; the message names the file, profile and field."""

    def __init__(self, message: str, *, path: Path | str | None = None,
                 profile: str | None = None, field: str | None = None):
        super().__init__(message)
        self.path = path
        self.profile = profile
        self.field = field


@dataclass(frozen=True)
class Network:
    name: str
    download_kbps: float  # 1 kbps = 1000 bit/s; 0 = not throttled
    upload_kbps: float
    latency_ms: float

    @property
    def throttled(self) -> bool:
        return self.download_kbps > 0 or self.upload_kbps > 0 or self.latency_ms > 0

    def download_seconds(self, nbytes: int | float) -> float:
        """Time to fetch `nbytes` in one request: latency plus transfer; 0 when unthrottled."""
        if not self.throttled:
            return 0.0
        transfer = nbytes * 8 / (self.download_kbps * 1000) if self.download_kbps > 0 else 0.0
        return self.latency_ms / 1000 + transfer

    def cdp_conditions(self) -> dict | None:
        """Arguments for CDP `Network.emulateNetworkConditions` (bytes/s, ms); None = don't."""
        if not self.throttled:
            return None
        return {"offline": False, "latency": self.latency_ms,
                "downloadThroughput": self.download_kbps * 1000 / 8 if self.download_kbps else -1,
                "uploadThroughput": self.upload_kbps * 1000 / 8 if self.upload_kbps else -1}


@dataclass(frozen=True)
class Calibration:
    host_index: float | None
    target_index: float | None
    factor: float  # >= 1: the CPU throttling rate to apply
    clamped: bool  # the host was too slow: factor held at 1
    warning: str | None


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    label: str
    tier: str
    descriptor: str | None
    benchmark_index: float | None
    cpu_slowdown: float | None
    cores: int
    network: Network
    memory_class: float
    emulated: bool = True
    endpoint: str | None = None
    #: A real phone over adb: its serial (`adb devices`) or host:port (`adb connect`).
    adb: str | None = None
    #: The TFLite benchmark tool built for that phone (else $EDGE_BENCHMARK_MODEL).
    benchmark_model: str | None = None
    #: A Grid hub's or cloud farm's capabilities (the catalog's table, as JSON values).
    capabilities: dict | None = field(default=None, hash=False)
    #: The cloud farm whose URL form the endpoint takes (a key of FARMS), or None.
    farm: str | None = None
    #: Names of the environment variables that hold the user name and access key.
    user_env: str | None = None
    key_env: str | None = None
    #: How many of the profiles that share this profile's endpoint (or adb phone) are measured
    #: at once, each one cell at a time (`edge.farm.scheduling.lanes`); None: the default,
    #: `DEFAULT_MAX_SESSIONS`.
    max_sessions: int | None = None

    @property
    def sessions_key(self) -> str | None:
        """What `max_sessions` counts against: the endpoint (without credentials), else the adb
        phone; None for a profile measured on this machine."""
        if self.endpoint:
            from edge.results.store import public_endpoint

            return public_endpoint(self.endpoint)
        return f"adb:{self.adb}" if self.adb else None

    @property
    def endpoint_kind(self) -> str | None:
        """What the endpoint is, in words (None for a local profile)."""
        if not self.endpoint:
            return None
        if self.endpoint.startswith(GRID_SCHEMES):
            return "Selenium Grid"
        if self.farm:
            return f"cloud farm ({self.farm})"
        if self.endpoint.startswith(("ws://", "wss://")):
            return "Playwright server"
        return "CDP"

    @property
    def is_host(self) -> bool:
        return self.tier == HOST_TIER

    @property
    def wasm_threads(self) -> int:
        """TF.js WASM's default thread count on this profile (half the cores, at least 1)."""
        return max(1, self.cores // 2)

    def slowdown(self, host_index: float | None) -> Calibration:
        return calibrate(host_index, self)


def calibrate(host_index: float | None, profile: DeviceProfile) -> Calibration:
    """The CPU throttling factor that makes this host run like `profile`.

    The host profile and real devices (`endpoint`) are never throttled (factor 1). A fixed
    `cpu_slowdown` is used as is. Otherwise factor = host_index / benchmark_index; below 1 the host
    is too slow to emulate the profile: factor 1, `clamped`, and a warning.
    """
    if host_index is not None and not (_is_number(host_index) and host_index > 0
                                       and math.isfinite(host_index)):
        raise ValueError(f"host benchmark index must be a positive number, got {host_index!r}")
    host = float(host_index) if host_index is not None else None
    target = profile.benchmark_index
    if profile.is_host or not profile.emulated:
        return Calibration(host, target, 1.0, False, None)
    if profile.cpu_slowdown is not None:
        return Calibration(host, target, float(profile.cpu_slowdown), False, None)
    if target is None:
        raise ValueError(f"profile {profile.name!r} has neither benchmark_index nor cpu_slowdown")
    if host is None:
        raise ValueError(f"profile {profile.name!r} is calibrated by benchmark index: measure the "
                         "host's index (HOST_BENCHMARK_JS) first")
    factor = host / target
    if factor >= 1:
        return Calibration(host, target, factor, False, None)
    warning = (f"this host is too slow to emulate profile {profile.name!r}: its benchmark index "
               f"{host:g} is below the profile's {target:g}; running unthrottled (factor 1), "
               f"its timings are pessimistic (about {target / host:.1f}x the device's)")
    return Calibration(host, target, 1.0, True, warning)


@functools.cache
def _playwright_devices() -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        return dict(p.devices)


def playwright_descriptors() -> dict:
    """Playwright's device descriptors, name → dict (starts Playwright's driver once per process,
    no browser)."""
    return dict(_playwright_devices())


# --- loading --------------------------------------------------------------------------------

_NETWORK_KEYS = ("download_kbps", "upload_kbps", "latency_ms")
_PROFILE_REQUIRED = ("label", "tier", "network")
_PHONE_REQUIRED = ("cores", "memory_class")
_PROFILE_KEYS = ("label", "tier", "descriptor", "benchmark_index", "cpu_slowdown", "cores",
                 "network", "memory_class", "emulated", "endpoint", "adb",
                 "benchmark_model", "capabilities", "farm", "user_env", "key_env",
                 "max_sessions")
#: Cells measured at once on one endpoint (or adb phone) unless its profiles say otherwise.
DEFAULT_MAX_SESSIONS = 1


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _hint(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


class _Checker:
    """Raises CatalogError with the `file: profile 'x': field 'y' ...` prefix."""

    def __init__(self, path: Path):
        self.path = path
        self.file = _display(path)

    def fail(self, message: str, where: str | None = None, name: str | None = None,
             field: str | None = None):
        prefix = self.file
        if where is not None:
            prefix += f": {where} {name!r}"
        if field is not None:
            prefix += f": field {field!r}"
        raise CatalogError(f"{prefix} {message}" if field else f"{prefix}: {message}",
                           path=self.path, profile=name if where == "profile" else None,
                           field=field)

    def keys(self, table: dict, allowed: Iterable[str], required: Iterable[str], where: str,
             name: str) -> None:
        allowed = tuple(allowed)
        for key in table:
            if key not in allowed:
                self.fail(f"unknown field {key!r}{_hint(key, allowed)} (allowed: "
                          f"{', '.join(allowed)})", where, name)
        for key in required:
            if key not in table:
                self.fail(f"missing field {key!r} (required: {', '.join(required)})", where, name)

    def number(self, table: dict, key: str, where: str, name: str, *, positive: bool,
               minimum: float | None = None) -> float:
        value = table[key]
        if minimum is not None:
            rule, ok = f"a number >= {minimum:g}", lambda v: v >= minimum
        elif positive:
            rule, ok = "a number > 0", lambda v: v > 0
        else:
            rule, ok = "a number >= 0", lambda v: v >= 0
        if not (_is_number(value) and math.isfinite(value) and ok(value)):
            self.fail(f"must be {rule}, got {_show(value)}", where, name, key)
        return float(value)

    def string(self, table: dict, key: str, where: str, name: str) -> str:
        value = table[key]
        if not isinstance(value, str):
            self.fail(f"must be a string, got {_show(value)}", where, name, key)
        return value


def _load_network(check: _Checker, name: str, table: Any) -> Network:
    if not isinstance(table, dict):
        check.fail(f"must be a table [networks.{name}], got {_show(table)}", "network", name)
    check.keys(table, _NETWORK_KEYS, _NETWORK_KEYS, "network", name)
    values = {key: check.number(table, key, "network", name, positive=False)
              for key in _NETWORK_KEYS}
    return Network(name=name, **values)


def _load_profile(check: _Checker, name: str, table: Any, networks: dict[str, Network],
                  descriptor_names) -> DeviceProfile:
    where = "profile"
    if not isinstance(table, dict):
        check.fail(f"must be a table [profiles.{name}], got {_show(table)}", where, name)
    if not _NAME.match(name):
        check.fail("name must be lowercase letters, digits, '_' and '-'", where, name)
    check.keys(table, _PROFILE_KEYS, _PROFILE_REQUIRED, where, name)

    label = check.string(table, "label", where, name)
    tier = check.string(table, "tier", where, name)
    if tier not in TIERS:
        check.fail(f"must be one of {', '.join(TIERS)}, got {_show(tier)}", where, name, "tier")
    is_host = tier == HOST_TIER
    if not is_host:
        for key in _PHONE_REQUIRED:
            if key not in table:
                check.fail(f"missing field {key!r} (required for tier {tier!r}: "
                           f"{', '.join(_PROFILE_REQUIRED + _PHONE_REQUIRED)})", where, name)

    endpoint = None
    if "endpoint" in table:
        endpoint = check.string(table, "endpoint", where, name)
        if not endpoint.startswith(ENDPOINT_SCHEMES):
            check.fail(f"must be a CDP URL (http://host:port) or a Playwright server (ws://...), "
                       f"or a Selenium Grid hub (grid+http://host:4444), got {_show(endpoint)}",
                       where, name, "endpoint")
        if is_host:
            check.fail("is not allowed on the host profile (it runs on this machine)",
                       where, name, "endpoint")
    adb = None
    if "adb" in table:
        adb = check.string(table, "adb", where, name).strip()
        if not _ADB_SERIAL.match(adb):
            check.fail(f"must be an adb serial (`adb devices`) or host:port (`adb connect`), "
                       f"got {_show(table['adb'])}", where, name, "adb")
        if is_host:
            check.fail("is not allowed on the host profile (it runs on this machine)",
                       where, name, "adb")
    benchmark_model = None
    if "benchmark_model" in table:
        benchmark_model = check.string(table, "benchmark_model", where, name) or None
        if adb is None:
            check.fail("needs an 'adb' device (the tool runs on that phone)", where, name,
                       "benchmark_model")
    emulated = endpoint is None and adb is None
    if "emulated" in table:
        value = table["emulated"]
        if not isinstance(value, bool):
            check.fail(f"must be true or false, got {_show(value)}", where, name, "emulated")
        if value and endpoint is not None:
            check.fail("must be false when 'endpoint' is given (a real browser is not emulated "
                       "or throttled)", where, name, "emulated")
        if value and adb is not None:
            check.fail("must be false when 'adb' is given (a real phone is not emulated or "
                       "throttled)", where, name, "emulated")
        if not value and endpoint is None and adb is None:
            check.fail("false needs an 'endpoint' (the real browser to connect to) or an 'adb' "
                       "device (the real phone to run native cells on)", where, name, "emulated")
        emulated = value
    remote = _load_remote(check, name, table, endpoint)
    max_sessions = None
    if "max_sessions" in table:
        max_sessions = table["max_sessions"]
        if not isinstance(max_sessions, int) or isinstance(max_sessions, bool) \
                or max_sessions < 1:
            check.fail(f"must be an integer >= 1, got {_show(max_sessions)}", where, name,
                       "max_sessions")
        if endpoint is None and adb is None:
            check.fail("needs an 'endpoint' or an 'adb' device (it caps the cells measured at "
                       "once there; cells on this machine run one at a time)", where, name,
                       "max_sessions")

    descriptor = None
    if "descriptor" in table:
        descriptor = check.string(table, "descriptor", where, name) or None
    if descriptor is not None:
        if is_host:
            check.fail(f"must be \"\" or omitted on the host profile, got {_show(descriptor)}",
                       where, name, "descriptor")
        names = descriptor_names()
        if descriptor not in names:
            check.fail(f"must be a Playwright device name, got {_show(descriptor)}"
                       f"{_hint(descriptor, names)} (names: playwright's `devices`)",
                       where, name, "descriptor")
    elif emulated and not is_host:
        check.fail("missing field 'descriptor' (required for an emulated phone: a Playwright "
                   "device name)", where, name)

    index = slowdown = None
    if "benchmark_index" in table:
        index = check.number(table, "benchmark_index", where, name, positive=True)
    if "cpu_slowdown" in table:
        slowdown = check.number(table, "cpu_slowdown", where, name, positive=True, minimum=1)
    if index is not None and slowdown is not None:
        check.fail("give either 'benchmark_index' or 'cpu_slowdown', not both", where, name)
    if is_host and (index is not None or slowdown is not None):
        field = "benchmark_index" if index is not None else "cpu_slowdown"
        check.fail("is not allowed on the host profile (the host is never throttled)",
                   where, name, field)
    if emulated and not is_host and index is None and slowdown is None:
        check.fail("missing field 'benchmark_index' or 'cpu_slowdown' (an emulated phone needs "
                   "one of the two)", where, name)

    if "cores" in table:
        cores = table["cores"]
        if not isinstance(cores, int) or isinstance(cores, bool) or cores < 1:
            check.fail(f"must be an integer >= 1, got {_show(cores)}", where, name, "cores")
    else:
        cores = os.cpu_count() or 1
    if "memory_class" in table:
        memory = check.number(table, "memory_class", where, name, positive=True)
    else:
        memory = _host_memory_gb()

    network_name = check.string(table, "network", where, name)
    if network_name not in networks:
        check.fail(f"must be one of the [networks] ({', '.join(networks) or 'none defined'}), "
                   f"got {_show(network_name)}", where, name, "network")

    return DeviceProfile(name=name, label=label, tier=tier, descriptor=descriptor,
                         benchmark_index=index, cpu_slowdown=slowdown, cores=cores,
                         network=networks[network_name], memory_class=memory,
                         emulated=emulated, endpoint=endpoint, adb=adb,
                         benchmark_model=benchmark_model, max_sessions=max_sessions,
                         **remote)


def _key_path(caps: dict, path: tuple[str, ...]) -> bool:
    """Whether the nested key `path` is present in `caps`."""
    for key in path:
        if not isinstance(caps, dict) or key not in caps:
            return False
        caps = caps[key]
    return True


def _load_remote(check: _Checker, name: str, table: dict, endpoint: str | None) -> dict:
    """The fields of a Grid hub or cloud farm endpoint: `capabilities` (a table), `farm` (a key
    of FARMS, on a ``ws(s)://`` endpoint) and the names of the environment variables that hold
    the credentials (`user_env`, `key_env`: both or neither; a farm needs both)."""
    where = "profile"
    given = [key for key in ("capabilities", "farm", "user_env", "key_env") if key in table]
    if not given:
        return {}
    if endpoint is None or endpoint.startswith(("http://", "https://")):
        what = "a profile without 'endpoint'" if endpoint is None else "a CDP endpoint"
        check.fail(f"is not allowed on {what} (only on a Selenium Grid hub, grid+http://..., or "
                   "a cloud farm's Playwright endpoint, ws(s)://... with 'farm')",
                   where, name, given[0])
    grid = endpoint.startswith(GRID_SCHEMES)
    farm = None
    if "farm" in table:
        farm = check.string(table, "farm", where, name)
        if grid:
            check.fail("is not allowed on a Selenium Grid hub (grid+http://...)", where, name,
                       "farm")
        if farm not in FARMS:
            check.fail(f"must be one of {', '.join(FARMS)}, got {_show(farm)}{_hint(farm, FARMS)}",
                       where, name, "farm")
    elif not grid:
        check.fail(f"needs 'farm' (one of {', '.join(FARMS)}: how the endpoint takes its "
                   "capabilities) on a ws(s):// endpoint", where, name, given[0])
    envs = {}
    for key in ("user_env", "key_env"):
        if key in table:
            envs[key] = check.string(table, key, where, name)
            if not _ENV_NAME.match(envs[key]):
                check.fail(f"must name an environment variable (letters, digits, '_'), got "
                           f"{_show(envs[key])}", where, name, key)
    if len(envs) == 1 or (farm is not None and not envs):
        missing = "key_env" if "user_env" in envs else "user_env"
        check.fail(f"missing field {missing!r} (the credentials come from two environment "
                   "variables: 'user_env' and 'key_env')", where, name)
    caps = None
    if "capabilities" in table:
        caps = table["capabilities"]
        if not isinstance(caps, dict):
            check.fail(f"must be a table [profiles.{name}.capabilities], got {_show(caps)}",
                       where, name, "capabilities")
        try:
            caps = json.loads(json.dumps(caps))
        except (TypeError, ValueError):
            check.fail("must hold JSON values only (strings, numbers, booleans, arrays, tables)",
                       where, name, "capabilities")
        if farm is not None:
            for path in (FARMS[farm].user, FARMS[farm].key):
                if _key_path(caps, path):
                    check.fail(f"must not hold {'.'.join(path)!r}: credentials come only from "
                               "the environment variables named by 'user_env' and 'key_env'",
                               where, name, "capabilities")
    return {"capabilities": caps, "farm": farm, **envs}


def _host_memory_gb() -> float:
    import psutil

    return round(psutil.virtual_memory().total / 2**30, 1)


def load_catalog(path: Path = DEFAULT_CATALOG,
                 descriptors: Iterable[str] | None = None) -> dict[str, DeviceProfile]:
    """Read and validate a catalog: profile name → DeviceProfile, in file order.

    `descriptors` is the set of valid Playwright device names; None asks Playwright
    (`playwright_descriptors()`, only if some profile names a descriptor)."""
    path = Path(path)
    check = _Checker(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        check.fail("device catalog not found")
    except OSError as exc:
        check.fail(f"cannot read the device catalog: {exc.strerror or exc}")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        check.fail(f"invalid TOML: {exc}")

    for key in data:
        if key not in ("profiles", "networks"):
            check.fail(f"unknown table [{key}]{_hint(key, ('profiles', 'networks'))} "
                       "(allowed: [profiles.<name>], [networks.<name>])")
    for key in ("networks", "profiles"):
        if not isinstance(data.get(key, {}), dict):
            check.fail(f"{key!r} must be tables [{key}.<name>], got {_show(data[key])}")
    networks = {name: _load_network(check, name, table)
                for name, table in data.get("networks", {}).items()}

    known: list[set[str]] = []

    def descriptor_names() -> set[str]:
        if not known:
            if descriptors is not None:
                known.append(set(descriptors))
            else:
                try:
                    known.append(set(playwright_descriptors()))
                except Exception as exc:  # noqa: BLE001 - no Playwright driver here
                    check.fail(f"cannot check descriptors: Playwright's device list is "
                               f"unavailable ({type(exc).__name__}: {exc})")
        return known[0]

    profiles = {name: _load_profile(check, name, table, networks, descriptor_names)
                for name, table in data.get("profiles", {}).items()}
    if not profiles:
        check.fail("no [profiles.<name>] defined")
    _check_sessions(check, profiles)
    return profiles


def _check_sessions(check: _Checker, profiles: Mapping[str, DeviceProfile]) -> None:
    """Profiles that share an endpoint (or adb phone) and give `max_sessions` agree on it."""
    given: dict[str, DeviceProfile] = {}
    for p in profiles.values():
        if p.max_sessions is None or p.sessions_key is None:
            continue
        first = given.setdefault(p.sessions_key, p)
        if first.max_sessions != p.max_sessions:
            check.fail(f"is {p.max_sessions}, but profile {first.name!r} on the same endpoint "
                       f"{p.sessions_key} says {first.max_sessions}: profiles that share an "
                       "endpoint share its limit, give it once or the same everywhere",
                       "profile", p.name, "max_sessions")


def session_limits(profiles: Mapping[str, DeviceProfile]) -> dict[str, int]:
    """Endpoint (or ``adb:serial``) -> how many cells may be measured there at once."""
    limits: dict[str, int] = {}
    for p in profiles.values():
        if p.sessions_key is not None:
            if p.max_sessions is not None:
                limits[p.sessions_key] = p.max_sessions
            else:
                limits.setdefault(p.sessions_key, DEFAULT_MAX_SESSIONS)
    return limits


# --- display --------------------------------------------------------------------------------


def devices_table(profiles: Mapping[str, DeviceProfile] | Iterable[DeviceProfile],
                  host_index: float | None = None, title: str = "edge devices"):
    """A rich Table of profiles; with `host_index`, a column of the calibrated CPU factor."""
    from rich.markup import escape
    from rich.table import Table

    rows = list(profiles.values()) if isinstance(profiles, Mapping) else list(profiles)
    table = Table(title=title)
    for column in ("name", "tier", "label", "descriptor", "cpu", "cores", "network", "memory",
                   "kind"):
        table.add_column(column, justify="right" if column in ("cores", "memory") else "left")
    if host_index is not None:
        table.add_column("factor", justify="right")
    for p in rows:
        if p.cpu_slowdown is not None:
            cpu = f"{p.cpu_slowdown:g}x fixed"
        elif p.benchmark_index is not None:
            cpu = f"index {p.benchmark_index:g}"
        else:
            cpu = "-"
        if p.endpoint or p.adb:
            from edge.results.store import public_endpoint

            parts = [f"{p.endpoint_kind} {public_endpoint(p.endpoint)}" if p.endpoint else None,
                     f"adb:{p.adb}" if p.adb else None]
            kind = "real: " + " ".join(x for x in parts if x)
        else:
            kind = "host" if p.is_host else "emulated"
        row = [p.name, p.tier, p.label, p.descriptor or "desktop", cpu, str(p.cores),
               p.network.name, f"{p.memory_class:g} GB", kind]
        if host_index is not None:
            cal = calibrate(host_index, p)
            row.append(f"{cal.factor:.2f}" + (" (host too slow)" if cal.clamped else ""))
        table.add_row(*(escape(cell) for cell in row))
    return table
