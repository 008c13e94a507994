"""Remote browsers: what a page on a real browser elsewhere needs that a local one does not.

A remote browser (a Playwright server, a CDP endpoint such as Chrome on Android) cannot reach the
loopback server of this machine: 127.0.0.1 is its own. So the page keeps the server's URL (a
loopback origin is a secure context, which cross-origin isolation and WASM threads need) and
every request to that origin is answered through the Playwright connection
(`deliver_through_connection`): Playwright's request routing fulfils it with what the local
server answers, headers included (COOP/COEP/CORP: the page is cross-origin isolated, so
`SharedArrayBuffer` and the threaded WASM backend work). The browser never opens a connection to
this machine; a browser behind a dead proxy still measures.

TF.js's threaded WASM backend starts its pthread workers from a Blob of its own script, not from
a URL, and the compiled module travels to them by `postMessage`: nothing a worker loads needs the
network, so routing (known to miss some workers' script loads) covers the threaded path.

`remote_fields` are what a remote record adds: that it is `real`, the kind of endpoint (CDP,
Playwright server, Selenium Grid, cloud farm), and what the page reported (user agent, browser
version, backend, threads, cross-origin isolation).
"""

from __future__ import annotations

import urllib.error
import urllib.request

#: What a cross-origin isolated page needs on every response (the local server sends them too;
#: set again in case a response lacks one).
ISOLATION_HEADERS = {
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-embedder-policy": "require-corp",
    "cross-origin-resource-policy": "same-origin",
}
#: Response headers not passed on: the connection's own business, or recomputed by Playwright.
_HOP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length",
                          "date", "server"})
#: Seconds one routed request may take against the local server.
FETCH_TIMEOUT_S = 60.0

# Requests to the local server never go through a proxy the environment may name.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch_local(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of `url` on the local loopback server."""
    request = urllib.request.Request(url, method=method)
    try:
        with _OPENER.open(request, timeout=FETCH_TIMEOUT_S) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()


def routed_response(url: str, method: str) -> dict:
    """The `route.fulfill` arguments for a request the page made to the local server."""
    if method not in ("GET", "HEAD"):
        return {"status": 405, "headers": {**ISOLATION_HEADERS, "allow": "GET, HEAD"},
                "body": b""}
    try:
        status, headers, body = fetch_local(url, method)
    except OSError as exc:  # the local server is gone: say so to the page, not to the driver
        return {"status": 502, "headers": {**ISOLATION_HEADERS,
                                           "content-type": "text/plain; charset=utf-8"},
                "body": f"edge: local server unreachable: {exc}".encode()}
    out = {k.lower(): v for k, v in headers.items() if k.lower() not in _HOP_HEADERS}
    out.update(ISOLATION_HEADERS)
    return {"status": status, "headers": out, "body": body}


def deliver_through_connection(context, server_url: str) -> None:
    """Answer every request of `context`'s pages to `server_url` through the Playwright
    connection, from the local server (see the module docstring)."""
    base = server_url.rstrip("/")

    def handle(route, request) -> None:
        route.fulfill(**routed_response(request.url, request.method))

    context.route(f"{base}/**", handle)


def match_threads(page, cdp, cores: int | None) -> int | None:
    """A cell with an explicit thread count asks TF.js for that many WASM threads, and TF.js
    uses at most half of `navigator.hardwareConcurrency`: when the remote browser reports fewer
    than `cores` (twice the threads), report `cores` to the page (DevTools override), as the
    local path does. Returns the browser's own count when it was overridden, else None."""
    if not cores:
        return None
    own = page.evaluate("() => navigator.hardwareConcurrency")
    if isinstance(own, int) and own >= cores:
        return None
    cdp.send("Emulation.setHardwareConcurrencyOverride", {"hardwareConcurrency": int(cores)})
    return own if isinstance(own, int) else None


def prepare_remote_page(context, page, cdp, server_url: str, cores: int | None) -> None:
    """Set up a fresh page of a remote browser before it opens the harness: requests to the
    local server routed through the connection, the thread count the cell asks for, and what
    `remote_fields` records later (kept on the page)."""
    deliver_through_connection(context, server_url)
    page._edge_remote = {"hardware_concurrency_override": None, "own_hardware_concurrency":
                         None}
    own = match_threads(page, cdp, cores)
    if own is not None:
        page._edge_remote.update(hardware_concurrency_override=int(cores),
                                 own_hardware_concurrency=own)


def remote_fields(session, profile, page, facts: dict, runtime: str) -> dict:
    """What a record of a remote endpoint adds: ``real`` and ``remote`` (the endpoint's kind, the
    page's user agent, the browser's version, the backend and thread count the page reported,
    whether it was cross-origin isolated, and any thread override). Empty for a local
    profile."""
    endpoint = getattr(profile, "endpoint", None)
    if not endpoint:
        return {}
    try:
        version = session.browser(endpoint, profile).version
    except Exception:  # noqa: BLE001 - informative; the browser may have gone meanwhile
        version = None
    if runtime == "tflite-web":
        threads = (facts.get("tflite") or {}).get("threadsConfigured")
    elif runtime == "ort-wasm":
        threads = (facts.get("ort") or {}).get("threadsEffective")
    else:
        threads = (facts.get("wasm") or {}).get("threadsUsed") \
            if facts.get("backend") == "wasm" else None
    return {"real": True, "remote": {
        "endpoint_kind": getattr(profile, "endpoint_kind", None),
        "user_agent": facts.get("userAgent"),
        "browser_version": version,
        "backend": facts.get("backend"),
        "threads": threads,
        "cross_origin_isolated": facts.get("crossOriginIsolated"),
        "hardware_concurrency": facts.get("hardwareConcurrency"),
        **(getattr(page, "_edge_remote", None) or {}),
    }}
