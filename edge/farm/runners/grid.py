"""A Selenium Grid 4 hub as a remote browser: a profile's ``endpoint = "grid+http://hub:4444"``.

edge asks the hub for a session (W3C WebDriver ``POST /session``, capabilities
``{"alwaysMatch": {"browserName": "chrome", ...the profile's capabilities}}``), reads the
``se:cdp`` capability the hub returns (a ``ws://`` URL of the node's browser, proxied by the
Grid), drives that browser over CDP with Playwright's ``connect_over_cdp``, and deletes the session
(``DELETE /session/{id}``) when it is done with the browser. A hub path prefix is kept
(``grid+http://hub:4444/wd/hub``). With ``user_env``/``key_env`` the hub is asked with HTTP basic
authentication, the credentials read from the environment at connect time.

Every error names the profile and the hub without credentials: a hub that refuses the session
(its W3C error and message), a session without ``se:cdp`` (a browser that has no CDP endpoint), a
hub that cannot be reached.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

#: Seconds to wait for the hub to create a session (a busy Grid queues the request).
SESSION_TIMEOUT_S = 300.0
#: Seconds to wait for the hub to delete one.
DELETE_TIMEOUT_S = 30.0
#: The browser asked for unless the profile's capabilities name another (Chromium-based: CDP).
DEFAULT_BROWSER = "chrome"

# The hub is reached directly, never through a proxy the environment may name.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class GridError(Exception):
    """The hub refused, failed or could not be reached; the message says which, for which
    profile."""


def hub_url(endpoint: str) -> str:
    """The hub's HTTP base URL of a ``grid+http(s)://`` endpoint."""
    return endpoint.split("+", 1)[1].rstrip("/")


def session_request(capabilities: dict | None) -> dict:
    """The W3C new-session body for a profile's capabilities."""
    return {"capabilities": {"alwaysMatch": {"browserName": DEFAULT_BROWSER,
                                             **(capabilities or {})}}}


def basic_auth(credentials: tuple[str, str]) -> dict[str, str]:
    """The HTTP basic authentication header for (user name, access key)."""
    token = base64.b64encode(":".join(credentials).encode()).decode()
    return {"authorization": f"Basic {token}"}


def _headers(credentials: tuple[str, str] | None) -> dict[str, str]:
    headers = {"content-type": "application/json; charset=utf-8", "accept": "application/json"}
    return {**headers, **basic_auth(credentials)} if credentials else headers


def _w3c_error(body: bytes) -> str:
    """The W3C error of a hub's answer (``error: message``, first line), or a short excerpt."""
    try:
        value = json.loads(body).get("value") or {}
        error, message = value.get("error"), value.get("message")
    except (ValueError, AttributeError):
        error = message = None
    if error or message:
        first = str(message or "").strip().splitlines()[0:1]
        return f"{error or 'error'}: {first[0][:300]}" if first else str(error)
    text = body.decode("utf-8", "replace").strip().splitlines()[0:1]
    return text[0][:200] if text else "(empty answer)"


class GridSession:
    """One session on a hub: created by `open`, deleted by `close` (once)."""

    def __init__(self, endpoint: str, where: str, credentials: tuple[str, str] | None = None):
        from edge.results.store import public_endpoint

        self.base = hub_url(endpoint)
        self.public = public_endpoint(endpoint)
        self.where = where  # "profile 'x'", for messages
        self.credentials = credentials
        self.session_id: str | None = None
        self.capabilities: dict = {}
        self.deleted = False

    def _request(self, method: str, path: str, body: dict | None, timeout: float):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers=_headers(self.credentials))
        return _OPENER.open(request, timeout=timeout)

    def open(self, capabilities: dict | None) -> str:
        """Create the session; return its ``se:cdp`` URL."""
        try:
            with self._request("POST", "/session", session_request(capabilities),
                               SESSION_TIMEOUT_S) as resp:
                answer = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise GridError(f"Selenium Grid at {self.public} ({self.where}, field 'endpoint') "
                            f"refused a session: HTTP {exc.code}, {_w3c_error(exc.read())}"
                            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise GridError(f"Selenium Grid at {self.public} ({self.where}, field 'endpoint') "
                            f"is unreachable: {reason}") from None
        except ValueError:
            raise GridError(f"Selenium Grid at {self.public} ({self.where}, field 'endpoint') "
                            "answered the new session with something that is not JSON") from None
        value = answer.get("value") if isinstance(answer, dict) else None
        value = value if isinstance(value, dict) else {}
        self.session_id = value.get("sessionId") or (answer.get("sessionId")
                                                     if isinstance(answer, dict) else None)
        self.capabilities = value.get("capabilities") or {}
        if not self.session_id:
            raise GridError(f"Selenium Grid at {self.public} ({self.where}, field 'endpoint') "
                            "answered the new session without a sessionId")
        cdp = self.capabilities.get("se:cdp")
        if not isinstance(cdp, str) or not cdp.startswith(("ws://", "wss://")):
            browser = self.capabilities.get("browserName") or "?"
            self.close()
            raise GridError(f"Selenium Grid at {self.public} ({self.where}, field 'endpoint') "
                            f"gave a {browser} session without an 'se:cdp' WebSocket URL: edge "
                            "drives it over CDP, so ask for a Chromium-based browser (field "
                            "'capabilities', browserName chrome or MicrosoftEdge) on a Grid "
                            "that exposes CDP")
        return cdp

    def close(self) -> None:
        """Delete the session (once; a hub that is gone meanwhile is not an error)."""
        if self.session_id is None or self.deleted:
            return
        self.deleted = True
        try:
            with self._request("DELETE", f"/session/{self.session_id}", None,
                               DELETE_TIMEOUT_S) as resp:
                resp.read()
        except (urllib.error.URLError, OSError):
            pass
