"""The device catalog: loading, validation errors, CPU calibration, network math, the table.

Fast: every test passes an explicit descriptor set except the one that checks the committed
catalog against Playwright's real device list (which starts Playwright's driver, no browser)."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import pytest

from edge.errors import EdgeError
from edge.farm.emulation.devices import (
    DEFAULT_CATALOG,
    HOST_BENCHMARK_JS,
    TIERS,
    Calibration,
    CatalogError,
    DeviceProfile,
    Network,
    calibrate,
    devices_table,
    load_catalog,
)

DESCRIPTORS = {"Moto G4", "Pixel 5", "Pixel 7", "iPhone 12"}

NETWORKS = {
    "slow-4g": {"download_kbps": 1474.56, "upload_kbps": 675.0, "latency_ms": 562.5},
    "fast-4g": {"download_kbps": 8100.0, "upload_kbps": 1350.0, "latency_ms": 165.0},
    "none": {"download_kbps": 0, "upload_kbps": 0, "latency_ms": 0},
}
PROFILES = {
    "moto_g4": {"label": "Low-end Android", "tier": "low", "descriptor": "Moto G4",
                "benchmark_index": 400, "cores": 8, "network": "slow-4g", "memory_class": 2,
                "emulated": True},
    "pixel_7": {"label": "High-end Android", "tier": "high", "descriptor": "Pixel 7",
                "cpu_slowdown": 1.5, "cores": 8, "network": "fast-4g", "memory_class": 8},
    "host": {"label": "This machine", "tier": "host", "descriptor": "", "network": "none",
             "emulated": True},
}


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def write_catalog(tmp_path: Path, profiles=None, networks=None, extra: str = "") -> Path:
    lines = []
    for name, table in (NETWORKS if networks is None else networks).items():
        lines.append(f"[networks.{_toml_value(name)}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    for name, table in (PROFILES if profiles is None else profiles).items():
        lines.append(f"[profiles.{_toml_value(name)}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    path = tmp_path / "catalog.toml"
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


def with_profile(name: str, **changes) -> dict:
    """PROFILES with `name` changed; a value of None removes the key."""
    profiles = {k: dict(v) for k, v in PROFILES.items()}
    profiles[name].update(changes)
    profiles[name] = {k: v for k, v in profiles[name].items() if v is not None}
    return profiles


def load(tmp_path, **kwargs):
    return load_catalog(write_catalog(tmp_path, **kwargs), descriptors=DESCRIPTORS)


def profile(**changes) -> DeviceProfile:
    base = dict(name="phone", label="Phone", tier="mid", descriptor="Pixel 5",
                benchmark_index=500.0, cpu_slowdown=None, cores=8,
                network=Network("fast-4g", 8100.0, 1350.0, 165.0), memory_class=4.0,
                emulated=True, endpoint=None)
    base.update(changes)
    return DeviceProfile(**base)


# --- loading -----------------------------------------------------------------------------------


def test_loads_a_valid_catalog(tmp_path):
    catalog = load(tmp_path)
    assert list(catalog) == ["moto_g4", "pixel_7", "host"]  # file order
    moto = catalog["moto_g4"]
    assert moto == DeviceProfile(
        name="moto_g4", label="Low-end Android", tier="low", descriptor="Moto G4",
        benchmark_index=400.0, cpu_slowdown=None, cores=8,
        network=Network("slow-4g", 1474.56, 675.0, 562.5), memory_class=2.0, emulated=True,
        endpoint=None)
    assert moto.wasm_threads == 4
    assert catalog["pixel_7"].emulated is True  # derived: no endpoint
    assert catalog["pixel_7"].cpu_slowdown == 1.5
    host = catalog["host"]
    assert host.is_host and host.descriptor is None
    assert host.benchmark_index is None and host.cpu_slowdown is None
    assert host.cores >= 1 and host.memory_class > 0  # this machine's, when omitted


def test_real_device_with_endpoint(tmp_path):
    profiles = with_profile("pixel_7", endpoint="http://127.0.0.1:9222", emulated=False,
                            cpu_slowdown=None, descriptor=None, benchmark_index=900)
    real = load(tmp_path, profiles=profiles)["pixel_7"]
    assert real.emulated is False and real.endpoint == "http://127.0.0.1:9222"
    cal = calibrate(3000.0, real)
    assert cal.factor == 1.0 and not cal.clamped and cal.warning is None
    ws = with_profile("pixel_7", endpoint="ws://10.0.0.2:3000/pw", emulated=None)
    assert load(tmp_path, profiles=ws)["pixel_7"].emulated is False


REAL = {"emulated": None, "cpu_slowdown": None, "descriptor": None}
CAPS = '[profiles.pixel_7.capabilities]\nos = "Windows"\nos_version = "11"\n'
LT_USER = '[profiles.pixel_7.capabilities."LT:Options"]\nuser = "u"\n'


def test_grid_hub_and_cloud_farm_profiles(tmp_path):
    grid = load(tmp_path, profiles=with_profile(
        "pixel_7", endpoint="grid+http://10.0.0.2:4444/wd/hub", **REAL), extra=CAPS)["pixel_7"]
    assert grid.emulated is False and grid.endpoint_kind == "Selenium Grid"
    assert grid.capabilities == {"os": "Windows", "os_version": "11"}
    assert grid.farm is None and grid.user_env is None and grid.key_env is None
    farm = load(tmp_path, profiles=with_profile(
        "pixel_7", endpoint="wss://cdp.browserstack.com/playwright", farm="browserstack",
        user_env="BROWSERSTACK_USERNAME", key_env="BROWSERSTACK_ACCESS_KEY", **REAL),
        extra=CAPS)["pixel_7"]
    assert farm.endpoint_kind == "cloud farm (browserstack)"
    assert (farm.user_env, farm.key_env) == ("BROWSERSTACK_USERNAME", "BROWSERSTACK_ACCESS_KEY")
    assert farm.capabilities == {"os": "Windows", "os_version": "11"}
    kinds = {p.endpoint_kind for p in (
        profile(endpoint="http://127.0.0.1:9222", emulated=False),
        profile(endpoint="ws://127.0.0.1:3000/", emulated=False), profile())}
    assert kinds == {"CDP", "Playwright server", None}


FARM = {"endpoint": "wss://cdp.browserstack.com/playwright", "farm": "browserstack",
        "user_env": "BROWSERSTACK_USERNAME", "key_env": "BROWSERSTACK_ACCESS_KEY", **REAL}


@pytest.mark.parametrize(("changes", "extra", "expected"), [
    ({**FARM, "farm": None}, "", "field 'user_env' needs 'farm' (one of browserstack, "
                                 "lambdatest"),
    ({**FARM, "farm": "browserstak"}, "", "field 'farm' must be one of browserstack, lambdatest, "
                                          "got 'browserstak'; did you mean 'browserstack'?"),
    ({**FARM, "key_env": None}, "", "missing field 'key_env' (the credentials come from two "
                                    "environment variables"),
    ({**FARM, "user_env": None, "key_env": None}, "", "missing field 'user_env'"),
    ({**FARM, "key_env": "BROWSERSTACK-KEY"}, "", "field 'key_env' must name an environment "
                                                  "variable"),
    (FARM, '[profiles.pixel_7.capabilities]\n"browserstack.accessKey" = "k"\n',
     "field 'capabilities' must not hold 'browserstack.accessKey': credentials come only from "
     "the environment variables named by 'user_env' and 'key_env'"),
    ({**FARM, "farm": "lambdatest"}, LT_USER,
     "field 'capabilities' must not hold 'LT:Options.user'"),
    ({"endpoint": "http://127.0.0.1:9222", **REAL}, CAPS,
     "field 'capabilities' is not allowed on a CDP endpoint"),
    (REAL, CAPS, "field 'capabilities' is not allowed on a profile without 'endpoint'"),
    ({"endpoint": "grid+http://127.0.0.1:4444", "farm": "browserstack", **REAL}, "",
     "field 'farm' is not allowed on a Selenium Grid hub"),
    ({"endpoint": "grid+http://127.0.0.1:4444", "key_env": "GRID_KEY", **REAL}, "",
     "missing field 'user_env'"),
])
def test_grid_and_farm_profile_errors(tmp_path, changes, extra, expected):
    with pytest.raises(CatalogError) as err:
        load(tmp_path, profiles=with_profile("pixel_7", **changes), extra=extra)
    assert expected in str(err.value)
    assert err.value.profile == "pixel_7"


def test_descriptor_checked_only_when_names_are_given(tmp_path):
    with pytest.raises(CatalogError) as err:
        load(tmp_path, profiles=with_profile("pixel_7", descriptor="Pixel 77"))
    message = str(err.value)
    assert "profile 'pixel_7': field 'descriptor'" in message
    assert "'Pixel 77'" in message and "did you mean 'Pixel 7'" in message


@pytest.mark.parametrize(("changes", "expected"), [
    ({"cores": -2}, "profile 'moto_g4': field 'cores' must be an integer >= 1, got -2"),
    ({"cores": 0}, "field 'cores' must be an integer >= 1, got 0"),
    ({"cores": 4.5}, "field 'cores' must be an integer >= 1, got 4.5"),
    ({"cores": True}, "field 'cores' must be an integer >= 1, got true"),
    ({"cores": "8"}, "field 'cores' must be an integer >= 1, got '8'"),
    ({"benchmark_index": 0}, "field 'benchmark_index' must be a number > 0, got 0"),
    ({"benchmark_index": -300}, "field 'benchmark_index' must be a number > 0, got -300"),
    ({"benchmark_index": "fast"}, "field 'benchmark_index' must be a number > 0, got 'fast'"),
    ({"benchmark_index": None, "cpu_slowdown": 0.5},
     "field 'cpu_slowdown' must be a number >= 1, got 0.5"),
    ({"benchmark_index": None, "cpu_slowdown": -4},
     "field 'cpu_slowdown' must be a number >= 1, got -4"),
    ({"memory_class": 0}, "field 'memory_class' must be a number > 0, got 0"),
    ({"label": 3}, "field 'label' must be a string, got 3"),
    ({"emulated": "yes"}, "field 'emulated' must be true or false, got 'yes'"),
    ({"tier": "budget"}, "field 'tier' must be one of low, mid, high, flagship, host, "
                         "got 'budget'"),
    ({"network": "5g"}, "field 'network' must be one of the [networks] (slow-4g, fast-4g, "
                        "none), got '5g'"),
    ({"cpu_slowdown": 4.0}, "profile 'moto_g4': give either 'benchmark_index' or "
                            "'cpu_slowdown', not both"),
    ({"benchmark_index": None}, "profile 'moto_g4': missing field 'benchmark_index' or "
                                "'cpu_slowdown'"),
    ({"descriptor": None}, "profile 'moto_g4': missing field 'descriptor'"),
    ({"cores": None}, "profile 'moto_g4': missing field 'cores'"),
    ({"memory_class": None}, "profile 'moto_g4': missing field 'memory_class'"),
    ({"label": None}, "profile 'moto_g4': missing field 'label' (required: label, tier, "
                      "network)"),
    ({"network": None}, "profile 'moto_g4': missing field 'network'"),
    ({"descriptor": "Moto G5"}, "field 'descriptor' must be a Playwright device name, "
                                "got 'Moto G5'; did you mean 'Moto G4'?"),
    ({"endpoint": "http://127.0.0.1:9222"},
     "field 'emulated' must be false when 'endpoint' is given"),
    ({"emulated": False}, "field 'emulated' false needs an 'endpoint'"),
    ({"endpoint": "127.0.0.1:9222", "emulated": False},
     "field 'endpoint' must be a CDP URL (http://host:port) or a Playwright server (ws://...), "
     "or a Selenium Grid hub (grid+http://host:4444)"),
])
def test_profile_errors(tmp_path, changes, expected):
    with pytest.raises(CatalogError) as err:
        load(tmp_path, profiles=with_profile("moto_g4", **changes))
    message = str(err.value)
    assert expected in message
    assert message.startswith(str(tmp_path / "catalog.toml") + ": ")  # names the file
    assert err.value.profile == "moto_g4"


def test_unknown_key_lists_allowed_keys(tmp_path):
    with pytest.raises(CatalogError) as err:
        load(tmp_path, profiles=with_profile("moto_g4", core=8))
    message = str(err.value)
    assert "profile 'moto_g4': unknown field 'core'; did you mean 'cores'?" in message
    assert ("(allowed: label, tier, descriptor, benchmark_index, cpu_slowdown, cores, network, "
            "memory_class, emulated, endpoint, adb, benchmark_model, capabilities, farm, "
            "user_env, key_env, max_sessions)") in message


def test_error_is_a_value_error_and_an_edge_error(tmp_path):
    with pytest.raises(ValueError):
        load(tmp_path, profiles=with_profile("moto_g4", cores=0))
    with pytest.raises(EdgeError):  # the CLI prints it as one line, exit 2
        load(tmp_path, profiles=with_profile("moto_g4", cores=0))


@pytest.mark.parametrize(("changes", "expected"), [
    ({"benchmark_index": 2000}, "profile 'host': field 'benchmark_index' is not allowed on the "
                                "host profile"),
    ({"cpu_slowdown": 2.0}, "profile 'host': field 'cpu_slowdown' is not allowed"),
    ({"descriptor": "Pixel 5"}, "profile 'host': field 'descriptor' must be \"\" or omitted"),
    ({"endpoint": "http://127.0.0.1:9222", "emulated": False},
     "profile 'host': field 'endpoint' is not allowed on the host profile"),
])
def test_host_profile_errors(tmp_path, changes, expected):
    with pytest.raises(CatalogError) as err:
        load(tmp_path, profiles=with_profile("host", **changes))
    assert expected in str(err.value)


def test_profile_name_must_be_lowercase(tmp_path):
    profiles = {"Moto G4" if k == "moto_g4" else k: v for k, v in PROFILES.items()}
    with pytest.raises(CatalogError, match=r"profile 'Moto G4': name must be lowercase"):
        load(tmp_path, profiles=profiles)


@pytest.mark.parametrize(("changes", "expected"), [
    ({"latency_ms": -1}, "network 'slow-4g': field 'latency_ms' must be a number >= 0, got -1"),
    ({"download_kbps": "fast"}, "field 'download_kbps' must be a number >= 0, got 'fast'"),
    ({"upload_kbps": None}, "network 'slow-4g': missing field 'upload_kbps'"),
    ({"rtt_ms": 150}, "network 'slow-4g': unknown field 'rtt_ms' (allowed: download_kbps, "
                      "upload_kbps, latency_ms)"),
])
def test_network_errors(tmp_path, changes, expected):
    networks = {k: dict(v) for k, v in NETWORKS.items()}
    networks["slow-4g"].update(changes)
    networks["slow-4g"] = {k: v for k, v in networks["slow-4g"].items() if v is not None}
    with pytest.raises(CatalogError) as err:
        load(tmp_path, networks=networks)
    assert expected in str(err.value)


def test_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[profiles.moto_g4\nlabel = 'x'\n", encoding="utf-8")
    with pytest.raises(CatalogError) as err:
        load_catalog(path, descriptors=DESCRIPTORS)
    assert str(err.value).startswith(f"{path}: invalid TOML")


def test_missing_file_and_unknown_table(tmp_path):
    with pytest.raises(CatalogError, match="device catalog not found"):
        load_catalog(tmp_path / "nope.toml", descriptors=DESCRIPTORS)
    with pytest.raises(CatalogError, match=r"unknown table \[profile\]; did you mean 'profiles'"):
        load(tmp_path, extra="[profile.x]\nlabel = 'x'\n")
    with pytest.raises(CatalogError, match=r"no \[profiles.<name>\] defined"):
        load(tmp_path, profiles={})


def test_error_path_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "devices").mkdir()
    path = write_catalog(tmp_path / "devices", profiles=with_profile("moto_g4", cores=-2))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CatalogError) as err:
        load_catalog(path, descriptors=DESCRIPTORS)
    assert str(err.value) == ("devices/catalog.toml: profile 'moto_g4': field 'cores' must be an "
                              "integer >= 1, got -2")
    assert (err.value.profile, err.value.field) == ("moto_g4", "cores")


# --- calibration --------------------------------------------------------------------------------


def test_factor_is_host_over_target():
    cal = profile(benchmark_index=500.0).slowdown(2000.0)
    assert cal == Calibration(host_index=2000.0, target_index=500.0, factor=4.0, clamped=False,
                              warning=None)
    assert calibrate(1500.0, profile(benchmark_index=400.0)).factor == pytest.approx(3.75)
    assert calibrate(500, profile(benchmark_index=500.0)).factor == 1.0  # equal: not clamped


def test_host_slower_than_target_is_clamped_with_a_warning():
    cal = calibrate(1000.0, profile(name="iphone_15_pro_max", benchmark_index=2300.0))
    assert cal.factor == 1.0 and cal.clamped
    assert "too slow to emulate profile 'iphone_15_pro_max'" in cal.warning
    assert "1000" in cal.warning and "2300" in cal.warning


def test_fixed_slowdown_is_used_as_is():
    phone = profile(benchmark_index=None, cpu_slowdown=4.0)
    for host in (300.0, 2000.0, None):
        cal = calibrate(host, phone)
        assert (cal.factor, cal.clamped, cal.warning) == (4.0, False, None)


def test_host_profile_is_never_throttled():
    host = profile(name="host", tier="host", descriptor=None, benchmark_index=None)
    for index in (None, 50.0, 5000.0):
        cal = host.slowdown(index)
        assert (cal.factor, cal.clamped, cal.warning) == (1.0, False, None)


def test_index_profile_needs_a_valid_host_index():
    with pytest.raises(ValueError, match="measure the host's index"):
        calibrate(None, profile())
    for bad in (0, -5.0, math.nan, math.inf, "1000"):
        with pytest.raises(ValueError, match="positive number"):
            calibrate(bad, profile())


# --- networks -----------------------------------------------------------------------------------


def test_download_seconds():
    slow = Network("slow-4g", 1474.56, 675.0, 562.5)
    assert slow.download_seconds(0) == pytest.approx(0.5625)
    assert slow.download_seconds(1_000_000) == pytest.approx(0.5625 + 8e6 / 1_474_560)
    fast = Network("fast-4g", 8000.0, 1000.0, 100.0)
    assert fast.download_seconds(4_000_000) == pytest.approx(0.1 + 4.0)  # 32 Mbit at 8 Mbit/s
    none = Network("none", 0, 0, 0)
    assert none.download_seconds(10**9) == 0.0 and not none.throttled
    assert none.cdp_conditions() is None
    assert fast.cdp_conditions() == {"offline": False, "latency": 100.0,
                                     "downloadThroughput": 1_000_000.0,
                                     "uploadThroughput": 125_000.0}
    latency_only = Network("rtt", 0, 0, 50.0)
    assert latency_only.download_seconds(10**9) == pytest.approx(0.05)


# --- the table ------------------------------------------------------------------------------------


def test_devices_table(tmp_path):
    from rich.console import Console

    catalog = load(tmp_path, profiles=with_profile("moto_g4", label="Moto [cheap]"))
    console = Console(width=220, record=True, color_system=None)
    console.print(devices_table(catalog, host_index=1000.0))
    text = console.export_text()
    for cell in ("moto_g4", "Moto [cheap]", "index 400", "1.5x fixed", "slow-4g", "2 GB",
                 "emulated", "desktop", "2.50", "1.50", "factor"):
        assert cell in text, cell
    assert devices_table(catalog.values()).row_count == 3


# --- the committed catalog ----------------------------------------------------------------------


def test_committed_catalog_loads_with_playwright_descriptors():
    catalog = load_catalog(DEFAULT_CATALOG)  # the real Playwright list (driver, no browser)
    phones = [p for p in catalog.values() if not p.is_host]
    assert len(phones) >= 6
    assert len({p.tier for p in phones}) >= 3
    assert {p.tier for p in catalog.values()} <= set(TIERS)
    assert any(p.is_host and p.emulated and p.network.name == "none" for p in catalog.values())
    for p in phones:
        assert p.emulated and p.descriptor and p.cores >= 1 and p.memory_class > 0
        assert (p.benchmark_index is None) != (p.cpu_slowdown is None)
    indexed = [p for p in phones if p.benchmark_index is not None]
    by_tier = {t: [p.benchmark_index for p in indexed if p.tier == t] for t in TIERS}
    # Faster tiers have higher indices (no phone outranks one of a higher tier).
    order = [by_tier[t] for t in ("low", "mid", "high", "flagship") if by_tier[t]]
    assert all(max(a) < min(b) for a, b in zip(order, order[1:], strict=False))
    nets = {p.network.name: p.network for p in catalog.values()}
    assert {"slow-4g", "fast-4g"} <= set(nets)


def test_committed_catalog_networks():
    text = DEFAULT_CATALOG.read_text(encoding="utf-8")
    assert "estimate" in text.lower()
    catalog = load_catalog(DEFAULT_CATALOG, descriptors=_all_descriptors_in(text))
    nets = {p.network.name: p.network for p in catalog.values()}
    assert (nets["slow-4g"].download_kbps, nets["slow-4g"].upload_kbps,
            nets["slow-4g"].latency_ms) == (1474.56, 675.0, 562.5)
    assert not nets["none"].throttled


def _all_descriptors_in(text: str) -> set[str]:
    import tomllib

    return {p["descriptor"] for p in tomllib.loads(text)["profiles"].values()
            if p.get("descriptor")}


# --- the benchmark workload ---------------------------------------------------------------------


def _node() -> str | None:
    try:
        import playwright

        bundled = Path(playwright.__file__).parent / "driver" / "node"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    return shutil.which("node")


@pytest.mark.skipif(_node() is None, reason="no Node.js (Playwright's driver ships one)")
def test_host_benchmark_js_returns_a_positive_index():
    script = f"const f = {HOST_BENCHMARK_JS}; console.log(JSON.stringify([f(100), f()]));"
    out = subprocess.run([_node(), "-e", script], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    short, default = (float(v) for v in out.strip().strip("[]").split(","))
    assert short > 0 and default > 0
