"""Remote endpoints: a device profile with an ``endpoint`` is a real browser elsewhere, connected
to, never launched, never throttled. One entry per endpoint kind: URL scheme -> how Playwright
connects to it.

The device catalog accepts the schemes of `edge.farm.emulation.devices.ENDPOINT_SCHEMES`; a test
checks that every one of them has an entry here.
"""

from __future__ import annotations

from collections.abc import Callable


def _playwright_server(playwright, endpoint: str):
    """A Playwright browser server (`launchServer`, `ws://…`)."""
    return playwright.chromium.connect(endpoint)


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
    """The browser at `endpoint`, by its scheme."""
    scheme = endpoint.split("://", 1)[0].lower()
    if scheme not in CONNECT:
        raise ValueError(f"unknown endpoint scheme {scheme!r} in {endpoint!r}; known: "
                         f"{', '.join(CONNECT)}")
    return CONNECT[scheme](playwright, endpoint)
