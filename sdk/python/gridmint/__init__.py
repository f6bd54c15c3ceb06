"""Gridmint from Python: submit jobs to a compute network, follow them, fetch their outputs, and
move tokens.

    import gridmint
    net = gridmint.connect("http://127.0.0.1:7070")    # key: $GRIDMINT_HOME/requester.key
    net.faucet()                                        # development networks only
    job = net.submit("examples/pi.toml")                # or a dict with the same fields
    print(net.wait(job)["status"], net.output(job).decode())

Keys, signing and the job spec reader are the Rust ones (``gridmint._native``, built from the
``api`` and ``jobspec`` crates): what this sends is byte for byte what ``gridmint job submit``
sends, and a key file works with both.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Union

from ._native import GridmintError, Session, parse_size, set_trust

__all__ = ["Network", "GridmintError", "connect", "default_key_path", "set_trust"]

Spec = Union[str, os.PathLike, Mapping[str, Any]]

FINISHED = ("completed", "failed", "cancelled")


def _base_units(amount: Union[str, int, float]) -> str:
    """``amount`` GRID (``"1.5"``, or a number) as the API's decimal string of base units."""
    from decimal import Decimal, InvalidOperation

    try:
        units = Decimal(str(amount)) * 10**9
    except InvalidOperation:
        raise ValueError(f"{amount!r} is not an amount of GRID") from None
    if units < 0 or units != units.to_integral_value():
        raise ValueError(f"{amount!r} is not a whole number of base units (10^-9 GRID)")
    return str(int(units))


_UNITS_MS = {
    "ms": 1, "msec": 1, "millis": 1, "millisecond": 1, "milliseconds": 1,
    "s": 1_000, "sec": 1_000, "secs": 1_000, "second": 1_000, "seconds": 1_000,
    "m": 60_000, "min": 60_000, "mins": 60_000, "minute": 60_000, "minutes": 60_000,
    "h": 3_600_000, "hr": 3_600_000, "hrs": 3_600_000, "hour": 3_600_000, "hours": 3_600_000,
    "d": 86_400_000, "day": 86_400_000, "days": 86_400_000,
    "w": 604_800_000, "week": 604_800_000, "weeks": 604_800_000,
}


def _millis(duration: Union[str, int, float, timedelta]) -> int:
    """``duration`` in whole milliseconds: seconds as a number (or a string of one), a
    ``timedelta``, or a string as the CLI writes one (``"2s"``, ``"30m"``, ``"1h 30m"``,
    ``"1day"``, ``"500ms"``)."""
    if isinstance(duration, timedelta):
        duration = duration.total_seconds()
    if isinstance(duration, bool):
        raise TypeError(f"{duration!r} is not a duration")
    if isinstance(duration, str) and re.fullmatch(r"\s*\d+(?:\.\d+)?\s*", duration):
        duration = float(duration) if "." in duration else int(duration)
    if isinstance(duration, (int, float)):
        ms = Decimal(str(duration)) * 1000
    elif isinstance(duration, str):
        text = duration.strip().lower()
        parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]+)", text)
        if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*([a-z]+)", "", text).strip():
            raise ValueError(f"{duration!r} is not a duration (expected e.g. \"1h\" or \"30s\")")
        ms = Decimal(0)
        for number, unit in parts:
            if unit not in _UNITS_MS:
                raise ValueError(f"unknown time unit {unit!r} in {duration!r} (ms, s, m, h, d, w)")
            ms += Decimal(number) * _UNITS_MS[unit]
    else:
        raise TypeError(f"{duration!r} is not a duration")
    if ms < 0:
        raise ValueError(f"{duration!r} is not a duration: it is negative")
    if ms != ms.to_integral_value():
        raise ValueError(f"{duration!r} is not a whole number of milliseconds")
    return int(ms)


def default_key_path() -> Path:
    """The requester key the CLI uses: ``$GRIDMINT_HOME/requester.key`` (``~/.gridmint``)."""
    home = os.environ.get("GRIDMINT_HOME")
    base = Path(home) if home else Path.home() / ".gridmint"
    return base / "requester.key"


def connect(
    url: str | None = None,
    key: str | os.PathLike | None = None,
    pin: str | Sequence[str] | None = None,
    ca: str | os.PathLike | None = None,
    plain_http: bool | None = None,
) -> "Network":
    """A network at ``url`` (default ``$GRIDMINT_COORDINATOR``, else http://127.0.0.1:7070),
    acting as the account whose key is in ``key`` (created if missing).

    Over HTTPS, as the CLI: ``pin`` trusts the coordinator certificate whose key has this pin
    (``sha256/...``, printed by the coordinator and kept in its data dir as ``tls/pin``; or a
    list), ``ca`` the certificates a CA in that PEM file issued; ``plain_http`` allows plain
    HTTP beyond loopback. Each defaults to ``$GRIDMINT_PIN`` (comma-separated),
    ``$GRIDMINT_CA`` and ``$GRIDMINT_PLAIN_HTTP``; without any, the system's roots. The trust is
    the process's, like the CLI's: it holds for every session made after."""
    if pin is None and os.environ.get("GRIDMINT_PIN"):
        pin = [p for p in os.environ["GRIDMINT_PIN"].split(",") if p.strip()]
    if ca is None and os.environ.get("GRIDMINT_CA"):
        ca = os.environ["GRIDMINT_CA"]
    if plain_http is None:
        plain_http = os.environ.get("GRIDMINT_PLAIN_HTTP", "").lower() in ("1", "true", "yes")
    pins = [pin] if isinstance(pin, str) else list(pin or [])
    if pins or ca is not None or plain_http:
        set_trust([p.strip() for p in pins], None if ca is None else Path(ca), bool(plain_http))
    return Network(url, key)


class Network:
    """A coordinator of a Gridmint network, and the account this session acts as."""

    def __init__(self, url: str | None = None, key: str | os.PathLike | None = None):
        self.url = url or os.environ.get("GRIDMINT_COORDINATOR") or "http://127.0.0.1:7070"
        self.key = Path(key) if key is not None else default_key_path()
        self.key.parent.mkdir(parents=True, exist_ok=True)
        self._s = Session(self.url, self.key)

    def __repr__(self) -> str:
        return f"Network({self.url!r}, account={self.account[:12]}…)"

    # ---- the network and accounts ---------------------------------------------------------

    @property
    def account(self) -> str:
        """This session's account id (hex)."""
        return self._s.account

    def status(self) -> dict:
        return json.loads(self._s.status())

    def network(self) -> dict:
        """The network's token, fees, stake and verification rules."""
        return json.loads(self._s.network())

    def balance(self, account: str | None = None) -> dict:
        """An account's view (this one's by default): ``balance``, ``bonded``, ``in_escrow``…
        as decimal strings of base units (10^9 per GRID); for a provider or validator that is
        backed, ``backing`` (``own``, ``delegated``, ``delegators``, ``commission_bps``,
        ``rewards_paid``, ``return_day_bps``…)."""
        return json.loads(self._s.account_view(account))

    def faucet(self) -> dict:
        """Tokens from a development network's faucet."""
        return json.loads(self._s.faucet())

    def transfer(self, to: str, amount: Union[str, int, float]) -> dict:
        """Sends ``amount`` GRID (``"1.5"``, or a number) to account ``to``."""
        return json.loads(self._s.transfer(to, str(amount)))

    def stake(self, amount: Union[str, int, float]) -> dict:
        """Bonds ``amount`` GRID of the balance as stake (a provider's, or a validator's)."""
        return json.loads(self._s.stake(str(amount)))

    def unstake(self, amount: Union[str, int, float]) -> dict:
        """Starts unbonding ``amount`` GRID of stake (released after the unbonding delay)."""
        return json.loads(self._s.unstake(str(amount)))

    def _act(self, body: dict) -> dict:
        return json.loads(self._s.action(json.dumps(body)))

    def delegate(self, provider: str, amount: Union[str, int, float]) -> dict:
        """Backs ``provider`` — a provider's or a validator's account (rules 27) — with
        ``amount`` GRID: its payments or share of fees (after its commission) and its slashes are
        shared with you (rules 25). An account that is neither: ``GridmintError`` with
        ``status == 404``."""
        return self._act({"delegate": {"provider": provider, "amount": _base_units(amount)}})

    def undelegate(self, provider: str, amount: Union[str, int, float]) -> dict:
        """Takes ``amount`` GRID back from ``provider`` (the provider or validator delegated
        to; released after the unbonding delay)."""
        return self._act({"undelegate": {"provider": provider, "amount": _base_units(amount)}})

    def withdraw_rewards(self, provider: str) -> dict:
        """Pays what the delegation to ``provider`` (a provider or validator) earned to the
        balance."""
        return self._act({"withdraw_rewards": {"provider": provider}})

    def rewards(self) -> list[dict]:
        """This account's delegations: ``provider`` (the provider or validator backed),
        ``amount`` (worth now), ``rewards`` (withdrawable), ``commission_bps``; amounts in base
        units."""
        return self.balance().get("delegations", [])

    def vote(self, proposal: int, option: str) -> dict:
        """Votes ``yes``, ``no``, ``abstain`` or ``no_with_veto`` on a proposal with this
        account's stake."""
        return self._act({"vote": {"proposal": proposal, "option": option}})

    def proposals(self) -> dict:
        """The governance parameters and the newest proposals with their tallies; under rules
        27 also ``staking`` (the staking rules in force) and ``validator_changes_queued``."""
        return json.loads(self._s.proposals())

    def validators(self) -> dict:
        """The validators (rules 27): ``validators`` (each one's ``account``, ``address``,
        ``power``, ``bonded``, ``earned`` and ``backing`` if backed; empty on a single
        coordinator), ``staking`` (``min_delegation``, ``max_commission_bps``,
        ``validator_fee_bps``, ``validator_payout_every_ms``…), ``fees_collected`` since the
        last payout and ``next_payout_at``; amounts in base units."""
        return json.loads(self._s.validators())

    def gpu_classes(self, cls: str | None = None, provider: str | None = None) -> dict:
        """GPU classes (rules 28): ``proven`` (each ``provider``, ``class``, ``by`` — the member
        whose check it passed, absent for the class's founder — and ``at``) and ``pending``
        claims (``provider``, ``operator``, ``class``, ``since``, ``checked_by`` and the open
        ``challenge`` with its ``checker`` and ``due``), of class ``cls`` and/or of ``provider``
        only; ``now`` is the network's time. A float GPU job runs only on proven classes."""
        return json.loads(self._s.gpu_classes(cls, provider))

    def market(self) -> list[dict]:
        """The price index: per class (``cpu``, ``gpu``, ``cpu@REGION``…) the ``median``,
        ``mean``, ``low`` and ``high`` price per fuel of recent accepted work."""
        return json.loads(self._s.market())["classes"]

    def history(self, account: str | None = None, limit: int = 50) -> list[dict]:
        """An account's history (this one's by default), newest first: every item's ``seq``,
        ``time`` and ``event`` (``transferred``, ``escrow_locked``, ``task_paid``, …)."""
        items: list[dict] = []
        before = None
        while len(items) < limit:
            page = json.loads(self._s.history(account, before, min(500, limit - len(items))))
            items.extend(page["items"])
            before = page.get("next_before")
            if before is None:
                break
        return items[:limit]

    # ---- reserved capacity (rules 26) -----------------------------------------------------

    def reserve(
        self,
        slots: int,
        period: Union[str, int, float, timedelta],
        periods: int,
        price: Union[str, int, float],
        cores: int = 0,
        memory: Union[str, int, None] = None,
        gpu: bool = False,
        region: str | None = None,
    ) -> int:
        """Reserves ``slots`` task slots for ``periods`` periods of ``period`` (seconds, or
        ``"1h"``, ``"30s"``…; at least a second) at ``price`` GRID per slot per period, and
        returns the reservation's id. Every slot's first period is prepaid now; slots no provider
        accepts within a period are refunded. Only providers with at least ``cores`` cores and
        ``memory`` (bytes, or ``"4GiB"``), a GPU with ``gpu``, in ``region`` if given, may accept
        them. While a provider holds a lease of it, this account's tasks run first in the leased
        slots and are paid by the reservation, not from their jobs' escrow."""
        if isinstance(memory, str):
            memory = parse_size(memory)
        spec = {
            "slots": int(slots),
            "cores": int(cores),
            "memory_bytes": int(memory or 0),
            "gpu": bool(gpu),
            "region": region,
            "period_ms": _millis(period),
            "periods": int(periods),
            "price_per_slot": _base_units(price),
        }
        resp = self._act({"reserve": spec})
        for event in resp["events"]:
            if event["event"] == "reserved":
                return int(event["reservation"])
        raise GridmintError("the coordinator accepted the reservation but reported no id")

    def accept_reservation(self, reservation: int, slots: int) -> dict:
        """Providers (a session with the provider's key, ``provider.key`` in its data dir):
        leases ``slots`` open slots of ``reservation``, paid its price per slot at the end of
        every period held (less the protocol fee), used or not."""
        return self._act({"accept_reservation": {"reservation": int(reservation),
                                                 "slots": int(slots)}})

    def cancel_reservation(self, reservation: int) -> dict:
        """Cancels this account's ``reservation``: open slots are refunded now; every lease runs
        to the end of its current period (and is paid for it) and is not renewed."""
        return self._act({"cancel_reservation": {"reservation": int(reservation)}})

    def leave_reservation(self, reservation: int) -> dict:
        """Providers: gives up this provider's lease of ``reservation`` now; its current period
        goes back to the requester in full."""
        return self._act({"leave_reservation": {"reservation": int(reservation)}})

    def reservations(self, owner: str | None = None, provider: str | None = None) -> list[dict]:
        """The newest reservations (at most 200), newest first: of account ``owner`` only and/or
        those provider ``provider`` holds a lease of now. Each as ``reservation()`` gives it."""
        return json.loads(self._s.reservations(owner, provider))

    def reservation(self, id: int) -> dict:
        """One reservation: ``owner``, ``slots``, its requirements, ``period_ms``, ``periods``,
        ``price_per_slot``, ``open_slots``, ``open_held``, ``paid``, ``refunded`` (base units),
        ``status`` (``open``, ``active``, ``cancelling``, ``ended``) and ``leases`` (per provider:
        ``slots``, ``period``, ``period_end``, ``held``…). Raises ``GridmintError`` with
        ``code == "not_found"`` for an unknown id."""
        return json.loads(self._s.reservation(int(id)))

    # ---- jobs -----------------------------------------------------------------------------

    def submit(self, spec: Spec, base_dir: str | os.PathLike | None = None) -> int:
        """Submits a job and returns its id. ``spec`` is a job spec file (TOML, as
        ``gridmint job submit`` reads it) or a dict with the same fields, whose paths are
        relative to ``base_dir`` (default: the current directory)."""
        if isinstance(spec, Mapping):
            base = Path(base_dir) if base_dir is not None else Path.cwd()
            return self._s.submit_json(json.dumps(dict(spec)), base)
        return self._s.submit_file(Path(spec))

    def cancel(self, job: int) -> dict:
        """Cancels one of this account's unfinished jobs."""
        return json.loads(self._s.cancel(int(job)))

    def job(self, job: int, tasks: bool = False) -> dict:
        """A job's view (with a page of per-task detail when ``tasks``)."""
        return json.loads(self._s.job(int(job), tasks))

    def wait(self, job: int, progress: bool = True, timeout: float | None = None) -> dict:
        """Waits until the job finishes and returns its view; shows a progress bar on stderr
        unless ``progress`` is false. Raises ``GridmintError`` if it failed or was cancelled,
        ``TimeoutError`` after ``timeout`` seconds."""
        started = time.monotonic()
        bar = _Bar(job) if progress else None
        while True:
            view = self.job(job)
            if bar:
                bar.show(view)
            if view["status"] in FINISHED:
                break
            if timeout is not None and time.monotonic() - started > timeout:
                raise TimeoutError(f"job {job} is still {view['status']} after {timeout} s")
            # A long poll: answered when the job finishes, or after a second with its progress.
            json.loads(self._s.job(int(job), False, 1000))
        if bar:
            bar.done()
        if view["status"] != "completed":
            raise GridmintError(f"job {job} {view['status']}: {view.get('reason', '')}".rstrip(": "))
        return view

    def output(self, job: int) -> bytes:
        """A completed job's output (its tasks' outputs joined, or its reduce task's)."""
        return self._s.output(int(job))

    def task_outputs(self, job: int) -> list[bytes]:
        """A completed job's tasks' outputs, in task order (a reduce task, if the job has one,
        last)."""
        view = self.job(job, tasks=True)
        missing = [t["task"]["index"] for t in view["tasks"] if not t.get("output_hash")]
        if missing:
            raise GridmintError(f"job {job}: tasks {missing} have no accepted output")
        tasks = sorted(view["tasks"], key=lambda t: t["task"]["index"])
        return [self._s.blob(t["output_hash"]) for t in tasks]

    def map(
        self,
        module: str | os.PathLike,
        arg_sets: Iterable[Sequence[Any]],
        progress: bool = True,
        **options: Any,
    ) -> list[bytes]:
        """Runs the wasm ``module`` once per argument set, as one job's tasks, and returns their
        outputs in the order of ``arg_sets``. ``options`` are job spec fields (``fuel``,
        ``memory``, ``timeout``, ``max_price``, ``redundancy``, …)."""
        tasks = [{"args": [str(a) for a in args]} for args in arg_sets]
        if not tasks:
            return []
        module = Path(module).resolve()
        spec = {"module": module.name, "task": tasks, **options}
        job = self.submit(spec, base_dir=module.parent)
        self.wait(job, progress=progress)
        return self.task_outputs(job)[: len(tasks)]


class _Bar:
    """A progress bar on stderr, redrawn in place."""

    def __init__(self, job: int):
        self.job = job
        self.shown = False
        self.tty = sys.stderr.isatty()

    def show(self, view: dict) -> None:
        total, done = view["tasks_total"], view["tasks_done"]
        width = 30
        filled = width * done // total if total else 0
        line = f"job {self.job} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} tasks, {view['status']}"
        if self.tty:
            sys.stderr.write("\r" + line)
        elif not self.shown or view["status"] in FINISHED:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()
        self.shown = True

    def done(self) -> None:
        if self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()
