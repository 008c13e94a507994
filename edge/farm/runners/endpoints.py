"""Remote endpoints: a device profile with an ``endpoint`` is a real browser elsewhere, connected
to, never launched, never throttled. One entry per endpoint kind: URL scheme -> how Playwright
connects to it: a Playwright server (``ws://``), a CDP endpoint (``http://``), a Selenium Grid 4
hub (``grid+http://``, `edge.farm.runners.grid`), and a cloud farm's Playwright endpoint (a
``wss://`` endpoint whose profile names a `farm`): the profile's capabilities as URL-encoded JSON
in the farm's query parameter, with the user name and access key read at connect time from the
environment variables the profile names. Those credentials never leave the connection: errors
are redacted (`redact`, `scrub`), records keep `public_endpoint`'s form of the endpoint.

The device catalog accepts the schemes of `edge.farm.emulation.devices.ENDPOINT_SCHEMES`; a test
checks that every one of them has an entry here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable


def client_version() -> str:
    """The version of the Playwright client installed here."""
    from importlib import metadata

    try:
        return metadata.version("playwright")
    except metadata.PackageNotFoundError:  # pragma: no cover - playwright runs this code
        return "unknown"


_MISMATCH = re.compile(r"server version:\s*v?(\d+\.\d+(?:\.\d+)?)", re.IGNORECASE)


def version_mismatch(message: str, endpoint: str) -> str | None:
    """One line saying that the Playwright server at `endpoint` and this client differ in
    major.minor (what a Playwright server answers such a client), or None for any other
    error."""
    if "version mismatch" not in message.lower():
        return None
    from edge.results.store import public_endpoint

    found = _MISMATCH.search(message)
    server = found.group(1) if found else "unknown"
    client = client_version()
    wanted = ".".join(server.split(".")[:2]) if found else "the server's major.minor"
    return (f"Playwright version mismatch at {public_endpoint(endpoint)}: server {server}, "
            f"client {client} (major.minor must match); install the server's version here "
            f"(pip install 'playwright=={wanted}.*') or run the server from Playwright "
            f"{'.'.join(client.split('.')[:2])}")


def _playwright_server(playwright, endpoint: str, profile=None):
    """A Playwright browser server (`launch-server`, `run-server`: `ws://…`), or a cloud farm's
    Playwright endpoint (a profile with `farm`: the URL `farm_url` makes, credentials
    included). Client and server must agree in major.minor; when they do not, the error says so
    in one line with both versions."""
    from playwright.sync_api import Error as PlaywrightError

    url = farm_url(endpoint, profile) if getattr(profile, "farm", None) else endpoint
    try:
        return playwright.chromium.connect(url)
    except PlaywrightError as exc:
        line = version_mismatch(str(exc), endpoint)
        if line is None:
            raise
        raise PlaywrightError(line) from None


def _cdp(playwright, endpoint: str, profile=None):
    """A Chrome DevTools Protocol endpoint (`http://host:9222`, e.g. Chrome on Android after
    `adb forward tcp:9222 localabstract:chrome_devtools_remote`)."""
    return playwright.chromium.connect_over_cdp(endpoint)


def _grid(playwright, endpoint: str, profile=None):
    """A Selenium Grid 4 hub (`grid+http://hub:4444`): a new session with the profile's
    capabilities, driven over its ``se:cdp`` URL; `release` deletes the session."""
    from playwright.sync_api import Error as PlaywrightError

    from edge.farm.runners.grid import GridError, GridSession, basic_auth

    where = f"profile {profile.name!r}" if getattr(profile, "name", None) else "no profile"
    creds = credentials(profile) if getattr(profile, "user_env", None) else None
    session = GridSession(endpoint, where, creds)
    try:
        cdp = session.open(getattr(profile, "capabilities", None))
    except GridError as exc:
        raise PlaywrightError(str(exc)) from None
    try:  # a hub that wants credentials wants them on its CDP proxy too
        browser = playwright.chromium.connect_over_cdp(cdp, headers=basic_auth(creds)) \
            if creds else playwright.chromium.connect_over_cdp(cdp)
    except BaseException:
        session.close()
        raise
    browser._edge_release = session.close
    return browser


#: URL scheme -> connect(playwright, endpoint, profile) -> a Playwright Browser.
CONNECT: dict[str, Callable] = {
    "ws": _playwright_server,
    "wss": _playwright_server,
    "http": _cdp,
    "https": _cdp,
    "grid+http": _grid,
    "grid+https": _grid,
}


def credentials(profile) -> tuple[str, str]:
    """(user name, access key) from the environment variables the profile names (`user_env`,
    `key_env`). A variable that is unset or empty is an error naming the profile, the field and
    the variable (never a value)."""
    from playwright.sync_api import Error as PlaywrightError

    names = {"user_env": profile.user_env, "key_env": profile.key_env}
    missing = [f"{var} (field {fld!r})" for fld, var in names.items()
               if not var or not os.environ.get(var)]
    if missing:
        raise PlaywrightError(f"profile {profile.name!r}: the credentials' environment "
                              f"variable{'s' if len(missing) > 1 else ''} "
                              f"{' and '.join(missing)} {'are' if len(missing) > 1 else 'is'} "
                              "not set")
    return os.environ[names["user_env"]], os.environ[names["key_env"]]


def _secrets(profile) -> list[str]:
    """The credential values a profile's connection carries (for redaction); none when the
    profile names no variables or they are unset."""
    out = []
    for var in (getattr(profile, "user_env", None), getattr(profile, "key_env", None)):
        value = os.environ.get(var) if var else None
        if value:
            out.append(value)
    return out


def farm_capabilities(profile) -> dict:
    """A cloud farm profile's capabilities with the credentials from the environment put at the
    farm's key paths (`edge.farm.emulation.devices.FARMS`)."""
    import copy

    from edge.farm.emulation.devices import FARMS

    farm = FARMS[profile.farm]
    caps = copy.deepcopy(profile.capabilities or {})
    user, key = credentials(profile)
    for path, value in ((farm.user, user), (farm.key, key)):
        table = caps
        for part in path[:-1]:
            table = table.setdefault(part, {})
        table[path[-1]] = value
    return caps


def farm_url(endpoint: str, profile) -> str:
    """The URL a cloud farm's Playwright endpoint is connected with: the profile's endpoint and
    its capabilities (credentials included) as URL-encoded JSON in the farm's query parameter
    (BrowserStack ``?caps=``, LambdaTest ``?capabilities=``). Holds secrets: never shown."""
    from urllib.parse import quote

    from edge.farm.emulation.devices import FARMS

    caps = json.dumps(farm_capabilities(profile), separators=(",", ":"))
    joiner = "&" if "?" in endpoint else "?"
    return f"{endpoint}{joiner}{FARMS[profile.farm].param}={quote(caps, safe='')}"


def connect(playwright, endpoint: str, profile=None):
    """The browser at `endpoint`, by its scheme (`profile`: the device profile, for a Grid's or
    cloud farm's capabilities and credentials). A failure is a Playwright error whose message
    never holds the endpoint's user name, password or query string (where a cloud farm's
    credentials travel), nor a credential read from the environment: only `public_endpoint`'s
    form of the endpoint."""
    from playwright.sync_api import Error as PlaywrightError

    from edge.results.store import public_endpoint

    scheme = endpoint.split("://", 1)[0].lower()
    if scheme not in CONNECT:
        raise ValueError(f"unknown endpoint scheme {scheme!r} in {public_endpoint(endpoint)!r}; "
                         f"known: {', '.join(CONNECT)}")
    try:
        return CONNECT[scheme](playwright, endpoint, profile)
    except PlaywrightError as exc:
        secrets = _secrets(profile)
        if public_endpoint(endpoint) == endpoint and not secrets:
            raise
        message = redact(str(exc), endpoint)
        if getattr(profile, "farm", None) and secrets:
            try:
                message = redact(message, farm_url(endpoint, profile))
            except PlaywrightError:
                pass
        raise PlaywrightError(scrub(message, secrets)) from None


#: What a failed connection says when the network, not the browser or the page, is at fault:
#: the endpoint refused, reset or dropped the connection, or could not be reached.
_CONNECTION_LOST = re.compile(
    r"ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|EPIPE|socket hang up|"
    r"[Cc]onnection (?:closed|refused|reset)|WebSocket (?:error|is not open|closed)|"
    r"is unreachable", re.IGNORECASE)


def connection_error(message: str | None) -> bool:
    """Whether an error says the connection to an endpoint was lost or could not be made."""
    return bool(message) and _CONNECTION_LOST.search(message) is not None


def public_error(message: str, endpoint: str, profile=None) -> str:
    """`message` fit for a record: without the endpoint's user name, password or query, and
    without a credential the profile reads from the environment."""
    message = redact(message, endpoint)
    if getattr(profile, "farm", None) and _secrets(profile):
        from playwright.sync_api import Error as PlaywrightError

        with contextlib.suppress(PlaywrightError):
            message = redact(message, farm_url(endpoint, profile))
    return scrub(message, _secrets(profile))


def release(browser) -> None:
    """Give back what connecting to `browser` took elsewhere (a Grid session), once; a no-op
    for other browsers."""
    done = getattr(browser, "_edge_release", None)
    if done is not None:
        browser._edge_release = None
        done()


def scrub(message: str, secrets) -> str:
    """`message` without any of `secrets`, in plain, URL-encoded or JSON-escaped form."""
    from urllib.parse import quote, quote_plus

    for secret in secrets:
        if len(secret) < 4:  # shorter ones would clobber ordinary text
            continue
        for form in {secret, quote(secret, safe=""), quote_plus(secret),
                     json.dumps(secret)[1:-1]}:
            message = message.replace(form, "***")
    return message


def redact(message: str, endpoint: str) -> str:
    """`message` without the endpoint's user name, password, query string or fragment, in any
    of the forms a driver's log writes them (the whole URL, ``user:password@``, ``?query``)."""
    from urllib.parse import urlsplit

    from edge.results.store import public_endpoint

    message = message.replace(endpoint, public_endpoint(endpoint))
    try:
        parts = urlsplit(endpoint)
    except ValueError:
        return message
    secrets = []
    if "@" in parts.netloc:
        secrets.append(parts.netloc.rsplit("@", 1)[0] + "@")
    secrets += [f"?{parts.query}", f"#{parts.fragment}", parts.query, parts.fragment,
                parts.password or "", parts.username or ""]
    for secret in secrets:
        if len(secret) >= 4:  # shorter ones would clobber ordinary text
            message = message.replace(secret, "")
    return message
