"""Lanes: which cells of a run may be measured at the same time.

- **The local lane.** Cells on this machine's CPU (the host and the emulated phones, browser and
  native) run one after another in the run's own thread, in the run's order, comparison groups
  included (`edge.farm.scheduling.interleaved`): they share the CPU that they measure.
- **One lane per real device** (a catalog profile with an ``endpoint`` or ``adb``): its cells run
  one after another in a thread of their own, concurrently with the local lane and with the
  other devices' lanes. A lane opens its own Playwright driver and browser connection in its
  thread (sync Playwright objects belong to the thread that made them); the loopback server is
  shared (a threading server).
- **Per-endpoint limits.** Profiles that share an endpoint (one cloud farm, one Grid hub) or an
  adb phone share its ``max_sessions`` (default 1): at most that many of their lanes run at once
  (`Slots`), so at most that many cells are in flight there and at most that many connections
  (a Grid's or cloud farm's sessions) are open; a lane waits for a slot, then measures all its
  cells and closes its connection before it gives the slot back.
- **Lost connections.** A cell of a real device that fails because its connection was lost or
  could not be made (the runner's `connection_lost`: the Playwright server or browser went away,
  the endpoint refused, the phone left adb) is measured again after a pause, at most `ATTEMPTS`
  times in all, the pauses doubling from `BACKOFF_S`; a cell that still fails is one ``failed``
  record naming the endpoint (without credentials). Other failures (a model that does not load)
  are recorded at once. A lane's records are kept back until its scheduler has seen them, so a
  retried cell is written once.
- **Provenance.** Every record written says how it was scheduled (`Schedule.annotate`):
  ``schedule: {lane, concurrent_with, concurrent_lanes, attempts}``, ``concurrent_with`` the
  number of other lanes' cells in flight at some time during it. A record measured on this
  machine's CPU (the local lane, or a real device's browser on a loopback address or an Android
  emulator) while another lane's cell ran is flagged in its ``load``: ``busy`` with
  ``concurrent_cells``; the load meter alone cannot see it (the other lanes are this process and
  its children, which it leaves out).

Interrupting a run stops every lane: a cell still in flight in a lane is dropped, not recorded,
and `resume` measures it; nothing already written is lost.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from rich.markup import escape

from edge.farm.cells import Bench, now
from edge.farm.emulation.devices import session_limits
from edge.farm.runners.base import Where
from edge.farm.runners.endpoints import public_error
from edge.farm.runners.table import runner_for
from edge.farm.scheduling.matrix import Cell

#: The lane of the cells on this machine's CPU.
LOCAL = "local"
#: Times a cell whose connection was lost is measured in all (the first try included).
ATTEMPTS = 3
#: Seconds before the first retry; each further retry waits twice as long (1 s, 2 s).
BACKOFF_S = 1.0
#: Seconds an interrupted run waits for its lanes' cells in flight before it leaves them.
STOP_GRACE_S = 10.0


def lane_of(cell: Cell, catalog: dict) -> str:
    """The lane of a cell: its device's for a real device, else `LOCAL`."""
    profile = catalog.get(cell.device)
    if getattr(profile, "endpoint", None) or getattr(profile, "adb", None):
        return cell.device
    return LOCAL


def split_lanes(cells: list[Cell], catalog: dict) -> tuple[list[Cell], dict[str, list[Cell]]]:
    """(the local lane's cells, device -> its lane's cells), each in the run's order."""
    local: list[Cell] = []
    remote: dict[str, list[Cell]] = {}
    for c in cells:
        lane = lane_of(c, catalog)
        (local if lane == LOCAL else remote.setdefault(lane, [])).append(c)
    return local, remote


_LOOPBACK_NAMES = ("localhost", "ip6-localhost", "ip6-loopback")


def _loopback(host: str | None) -> bool:
    import ipaddress

    if not host:
        return False
    if host.lower() in _LOOPBACK_NAMES or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def measures_here(profile) -> bool:
    """Whether a profile's cells run on this machine's CPU: a local profile, a real browser
    whose endpoint is a loopback address, an adb device that is an emulator or on loopback
    (a phone's browser after ``adb forward`` is on loopback too: counted, to be safe)."""
    endpoint = getattr(profile, "endpoint", None)
    adb = getattr(profile, "adb", None)
    if not endpoint and not adb:
        return True
    if endpoint:
        try:
            if _loopback(urlsplit(endpoint.split("+", 1)[-1]).hostname):
                return True
        except ValueError:
            pass
    if adb:
        return adb.startswith("emulator-") or _loopback(adb.rsplit(":", 1)[0])
    return False


@dataclass
class _Flight:
    """A cell (or comparison group) in flight in a lane, and the other lanes' cells seen."""

    lane: str
    others: dict[int, str] = field(default_factory=dict)  # token -> lane


class Schedule:
    """The cells in flight in every lane, to say in each record how it was scheduled."""

    def __init__(self, catalog: dict):
        self.catalog = catalog
        self._lock = threading.Lock()
        self._flights: dict[int, _Flight] = {}
        self._next = 0
        self._here = threading.local()

    def enter(self, lane: str) -> None:
        """This thread measures `lane`'s cells."""
        self._here.lane = lane

    @property
    def lane(self) -> str:
        return getattr(self._here, "lane", LOCAL)

    def begin(self) -> int:
        """A cell (or a comparison group) of this thread's lane starts."""
        lane = self.lane
        with self._lock:
            token, self._next = self._next, self._next + 1
            flight = _Flight(lane)
            for other_token, other in self._flights.items():
                if other.lane != lane:
                    other.others[token] = lane
                    flight.others[other_token] = other.lane
            self._flights[token] = flight
        self._here.token, self._here.attempts = token, None
        return token

    def end(self) -> None:
        """This thread's cell (or group) is done."""
        token = getattr(self._here, "token", None)
        with self._lock:
            self._flights.pop(token, None)
        self._here.token, self._here.attempts = None, None

    def attempts(self, attempts: int, errors: list[str]) -> None:
        """The cell being written took `attempts` tries; `errors`: why the earlier ones
        failed."""
        self._here.attempts = {"attempts": attempts, "lost_connections": errors}

    def annotate(self, rec: dict) -> None:
        """Add ``schedule`` to a record written by this thread, and flag its ``load`` when it
        was measured on this machine's CPU while another lane's cell ran."""
        with self._lock:
            flight = self._flights.get(getattr(self._here, "token", None))
            others = dict(flight.others) if flight is not None else {}
        schedule = {"lane": self.lane, "concurrent_with": len(others),
                    "concurrent_lanes": sorted(set(others.values()))}
        schedule.update(getattr(self._here, "attempts", None) or {"attempts": 1})
        rec["schedule"] = schedule
        load = rec.get("load")
        if others and isinstance(load, dict) \
                and measures_here(self.catalog.get(rec.get("device"))):
            rec["load"] = {**load, "busy": True, "concurrent_cells": len(others),
                           "concurrent_note": (
                               f"measured while {len(others)} cell(s) of other lanes "
                               f"({', '.join(schedule['concurrent_lanes'])}) ran on this "
                               "machine: their drivers, routed requests and fidelity checks, "
                               "and any browser of theirs on loopback, share its CPU")}


class Slots:
    """At most `max_sessions` lanes at once per endpoint (or adb phone): a lane holds a slot
    while it measures its cells, its connection open."""

    def __init__(self, catalog: dict):
        self.catalog = catalog
        self._sem = {key: threading.BoundedSemaphore(n)
                     for key, n in session_limits(catalog).items()}

    @contextlib.contextmanager
    def held(self, device: str, stop: threading.Event):
        """Hold a slot of the device's endpoint; False inside when `stop` came first. With one
        lane per device and one cell at a time per lane, at most `max_sessions` cells of the
        endpoint are in flight at once."""
        profile = self.catalog.get(device)
        key = getattr(profile, "sessions_key", None)
        sem = self._sem.get(key)
        if sem is None:
            yield True
            return
        while not sem.acquire(timeout=0.2):
            if stop.is_set():
                yield False
                return
        try:
            yield True
        finally:
            sem.release()


class RemoteLanes:
    """The real devices' lanes, each in a thread: ``with RemoteLanes(...) as lanes: <the local
    lane>; lanes.wait()``. Leaving the block by an exception (Ctrl-C) stops them."""

    def __init__(self, bench: Bench, lanes: dict[str, list[Cell]], checked, finish,
                 measure_cell, server_url: str | None, browser_info=None):
        self.bench, self.lanes = bench, lanes
        self.checked, self.finish, self.measure_cell = checked, finish, measure_cell
        self.server_url, self.browser_info = server_url, browser_info
        self.slots = Slots(bench.catalog)
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def __enter__(self) -> RemoteLanes:
        for device, cells in self.lanes.items():
            thread = threading.Thread(target=self._lane, args=(device, cells),
                                      name=f"edge-lane-{device}", daemon=True)
            self.threads.append(thread)
            thread.start()
        return self

    def wait(self) -> None:
        """Until every lane has measured its cells."""
        for thread in self.threads:
            while thread.is_alive():
                thread.join(0.2)

    def __exit__(self, kind, exc, tb) -> None:
        if kind is None:
            self.wait()
            return
        self.stop.set()
        deadline = time.monotonic() + STOP_GRACE_S
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- in a lane's thread --

    def _lane(self, device: str, cells: list[Cell]) -> None:
        bench = self.bench
        bench.schedule.enter(device)
        done: set[Cell] = set()
        try:
            # the endpoint's slot is held for the whole lane: a connection, and with it a Grid
            # or cloud farm session, is open only while the slot is held
            with self.slots.held(device, self.stop) as ok, contextlib.ExitStack() as stack:
                if not ok:
                    return
                session = None
                if any(not c.native for c in cells):
                    from edge.farm.runners.browser import BrowserSession

                    # this thread's own Playwright driver and connections
                    session = stack.enter_context(BrowserSession(self.browser_info))
                where = Where(session, self.server_url)
                for cell in cells:
                    if self.stop.is_set():
                        return
                    self._cell(cell, where)
                    done.add(cell)
        except Exception as exc:  # noqa: BLE001 - the lane's cells are records, not a crash
            if self.stop.is_set():
                return
            profile = bench.catalog.get(device)
            error = f"{type(exc).__name__}: {str(exc).strip()}".splitlines()[0]
            if getattr(profile, "endpoint", None):
                error = public_error(error, profile.endpoint, profile)
            for cell in cells:
                if cell not in done and not self.stop.is_set():
                    with contextlib.suppress(Exception):
                        self.finish(bench.record(cell, "failed", None, started=now(),
                                                 error=f"device lane {device}: {error}"))

    def _cell(self, cell: Cell, where: Where) -> None:
        bench = self.bench
        artifact = self.checked(cell)
        if artifact is None:
            return
        profile = bench.catalog.get(cell.device)
        runner = runner_for(cell.runtime)
        errors: list[str] = []  # why each try so far lost its connection
        for attempt in range(1, ATTEMPTS + 1):
            bench.schedule.begin()
            try:
                rec = self._attempt(cell, artifact, where)
                if self.stop.is_set():
                    return  # in flight when the run was interrupted: resume measures it
                error = rec.get("error") if rec["status"] == "failed" else None
                if error is not None and runner.connection_lost(bench, cell, where, error):
                    errors.append(_public(error, profile))
                    if where.session is not None and getattr(profile, "endpoint", None):
                        where.session.disconnect(profile.endpoint, profile)
                    if attempt < ATTEMPTS:
                        rec = None  # dropped: measured again after the pause below
                    else:
                        rec["error"] = (f"connection to {_where(profile)} lost: failed "
                                        f"{ATTEMPTS} times ({ATTEMPTS - 1} retries with "
                                        f"backoff); last: {errors[-1]}")
                if rec is not None:
                    bench.schedule.attempts(attempt, errors)
                    bench.commit(rec)
                    self.finish(rec)
                    return
            finally:
                bench.schedule.end()
            delay = BACKOFF_S * 2 ** (attempt - 1)
            bench.console.print(escape(
                f"  retry       {_cell_id(cell)}: connection to {_where(profile)} lost "
                f"({errors[-1][:100]}); attempt {attempt + 1} of {ATTEMPTS} in "
                f"{delay:g} s"))
            if self.stop.wait(delay):
                return

    def _attempt(self, cell: Cell, artifact, where: Where) -> dict:
        """One try at a cell: its record, kept back (`Bench.deferred`), not yet written."""
        bench = self.bench
        kept: list[dict] = []
        bench.deferred = kept
        started = now()
        try:
            self.measure_cell(bench, cell, artifact, where)
        except Exception as exc:  # noqa: BLE001 - a record, never a crash of the lane
            text = f"{type(exc).__name__}: {str(exc).strip()}".splitlines()[0]
            bench.record(cell, "failed", artifact, started=started,
                         error=_public(text, bench.catalog.get(cell.device)))
        finally:
            bench.deferred = None
        return kept[-1]


def _where(profile) -> str:
    """The endpoint (without credentials) or adb phone of a profile, for messages."""
    return getattr(profile, "sessions_key", None) or "the device"


def _cell_id(cell: Cell) -> str:
    from edge.results.store import cell_id

    return cell_id(**cell.as_dict())


def _public(error: str, profile) -> str:
    endpoint = getattr(profile, "endpoint", None)
    return public_error(error, endpoint, profile) if endpoint else error
