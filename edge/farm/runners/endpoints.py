"""Remote endpoints: a device profile with an ``endpoint`` is a real browser elsewhere, connected
to, never launched, never throttled. One entry per endpoint kind: URL scheme -> how Playwright
connects to it.

The device catalog accepts the schemes of `edge.farm.emulation.devices.ENDPOINT_SCHEMES`; a test
checks that every one of them has an entry here.
"""

from __future__ import annotations

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


def _playwright_server(playwright, endpoint: str):
    """A Playwright browser server (`launch-server`, `run-server`: `ws://…`). Client and server
    must agree in major.minor; when they do not, the error says so in one line with both
    versions."""
    from playwright.sync_api import Error as PlaywrightError

    try:
        return playwright.chromium.connect(endpoint)
    except PlaywrightError as exc:
        line = version_mismatch(str(exc), endpoint)
        if line is None:
            raise
        raise PlaywrightError(line) from None


def _cdp(playwright, endpoint: str):
    """A Chrome DevTools Protocol endpoint (`http://host:9222`, e.g. Chrome on Android after
    `adb forward tcp:9222 localabstract:chrome_devtools_remote`)."""
    return playwright.chromium.connect_over_cdp(endpoint)


#: URL scheme -> connect(playwright, endpoint) -> a Playwright Browser.
CONNECT: dict[str, Callable] = {
    "ws": _playwright_server,
    "wss": _playwright_server,
    "http": _cdp,
    "https": _cdp,
}


def connect(playwright, endpoint: str):
    """The browser at `endpoint`, by its scheme. A failure is a Playwright error whose message
    never holds the endpoint's user name, password or query string (where a cloud farm's
    credentials travel): only `public_endpoint`'s form of it."""
    from playwright.sync_api import Error as PlaywrightError

    from edge.results.store import public_endpoint

    scheme = endpoint.split("://", 1)[0].lower()
    if scheme not in CONNECT:
        raise ValueError(f"unknown endpoint scheme {scheme!r} in {public_endpoint(endpoint)!r}; "
                         f"known: {', '.join(CONNECT)}")
    try:
        return CONNECT[scheme](playwright, endpoint)
    except PlaywrightError as exc:
        if public_endpoint(endpoint) == endpoint:
            raise
        raise PlaywrightError(redact(str(exc), endpoint)) from None


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
