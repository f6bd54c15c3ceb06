"""The Python SDK against a real network: a `gridmint coordinator --dev` and three providers,
started as processes from the binary in $GRIDMINT_BIN (default: the repository's
target/debug/gridmint, which `cargo test` builds)."""

import json
import math
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

import gridmint

REPO = Path(__file__).resolve().parents[3]
BIN = Path(os.environ.get("GRIDMINT_BIN", REPO / "target" / "debug" / "gridmint"))
PI = REPO / "examples" / "pi.toml"
PI_WASM = REPO / "guests" / "pi.wasm"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    """The network's URL and the directory its processes keep their data in (the providers'
    in `provider-0`… with their keys, `provider.key`)."""
    assert BIN.exists(), f"{BIN} is missing: build it with `cargo build -p cli` or set GRIDMINT_BIN"
    root = tmp_path_factory.mktemp("network")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    procs = []
    logs = []

    def spawn(name, *args):
        log = open(root / f"{name}.log", "w")
        logs.append(log)
        procs.append(subprocess.Popen([str(BIN), *args], stdout=log, stderr=subprocess.STDOUT,
                                      env={**os.environ, "GRIDMINT_HOME": str(root / "home")}))

    spawn("coordinator", "coordinator", "--dev", "--listen", f"127.0.0.1:{port}",
          "--data-dir", str(root / "coordinator"))
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{url}/v1/status", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    for i in range(3):
        spawn(f"provider-{i}", "provider", "--dedicated", "--coordinator", url,
              "--data-dir", str(root / f"provider-{i}"), "--slots", "1")
    for _ in range(300):
        status = json.load(urllib.request.urlopen(f"{url}/v1/status", timeout=5))
        if status["providers_active"] == 3:
            break
        time.sleep(0.1)
    yield url, root
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=30)
    for log in logs:
        log.close()


@pytest.fixture(scope="module")
def url(network):
    return network[0]


@pytest.fixture
def net(url, tmp_path):
    net = gridmint.connect(url, key=tmp_path / "requester.key")
    net.faucet()
    return net


def test_the_pi_job_in_five_lines(url, tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDMINT_HOME", str(tmp_path))
    net = gridmint.connect(url)
    net.faucet()
    job = net.submit(PI)
    assert net.wait(job, progress=False)["status"] == "completed"
    hits, samples = (sum(int(line.split()[i]) for line in net.output(job).decode().splitlines())
                     for i in (0, 1))
    assert abs(4 * hits / samples - math.pi) < 0.01
    # The key it made is where, and what, the CLI reads.
    assert (tmp_path / "requester.key").exists()
    cli = subprocess.run([str(BIN), "keys", "--json"], capture_output=True, text=True, check=True,
                         env={**os.environ, "GRIDMINT_HOME": str(tmp_path)})
    assert json.loads(cli.stdout)["account"] == net.account


def test_map_returns_outputs_in_the_order_of_the_argument_sets(net):
    forward = net.map(PI_WASM, [[2000, seed] for seed in (1, 2, 3)], progress=False,
                      fuel=200_000_000)
    backward = net.map(PI_WASM, [[2000, seed] for seed in (3, 2, 1)], progress=False,
                       fuel=200_000_000)
    assert len(forward) == 3
    assert backward == list(reversed(forward))
    for out in forward:
        hits, samples = out.decode().split()
        assert int(samples) == 2000 and 0 < int(hits) < 2000


def test_a_dict_spec_is_the_spec_file_s_fields(net):
    job = net.submit({"module": PI_WASM.name, "fuel": 200_000_000,
                      "task": [{"args": ["1000", "7"]}, {"args": ["1000", "8"]}]},
                     base_dir=PI_WASM.parent)
    view = net.wait(job, progress=False)
    assert view["tasks_total"] == 2
    assert len(net.task_outputs(job)) == 2
    assert net.output(job) == b"".join(net.task_outputs(job))


def test_progress_is_shown(net, capsys):
    job = net.submit(PI)
    net.wait(job)
    assert "24/24 tasks, completed" in capsys.readouterr().err


def test_wallet(net, url, tmp_path):
    other = gridmint.connect(url, key=tmp_path / "other.key")
    before = int(other.balance()["balance"])
    net.transfer(other.account, "1.5")
    assert int(other.balance()["balance"]) == before + 1_500_000_000
    assert int(net.balance(other.account)["balance"]) == before + 1_500_000_000


def test_stake_and_history(net):
    net.stake("100")
    assert int(net.balance()["bonded"]) == 100_000_000_000
    net.unstake("40")
    view = net.balance()
    assert int(view["bonded"]) == 60_000_000_000
    assert [int(u["amount"]) for u in view["unbonding"]] == [40_000_000_000]
    kinds = [item["event"]["event"] for item in net.history()]
    assert "staked" in kinds and "unbonding_started" in kinds and "faucet_paid" in kinds


def test_delegation_rewards_and_the_market(net):
    providers = json.load(urllib.request.urlopen(f"{net.url}/v1/providers", timeout=5))
    provider = providers[0]["id"]
    net.delegate(provider, "200")
    [d] = net.rewards()
    assert d["provider"] == provider and int(d["amount"]) == 200_000_000_000
    # Its share of the provider's payments from a job it helps pay for.
    job = net.submit(PI)
    net.wait(job, progress=False)
    earned = int(net.rewards()[0]["rewards"])
    if earned:
        net.withdraw_rewards(provider)
        assert int(net.rewards()[0]["rewards"]) == 0
    cpu = [c for c in net.market() if c["class"] == "cpu"]
    assert cpu and int(cpu[0]["median"]) >= 1
    net.undelegate(provider, "200")
    view = net.balance()
    assert "delegations" not in view
    assert int(view["delegation_unbonding"][0]["amount"]) == 200_000_000_000
    with pytest.raises(ValueError, match="base units"):
        net.delegate(provider, "0.0000000001")
    with pytest.raises(gridmint.GridmintError, match="unknown proposal"):
        net.vote(999, "yes")
    assert net.proposals()["params"]["quorum_bps"] == 3340


def test_validators_and_delegating_to_neither_provider_nor_validator(net, url, tmp_path):
    """Rules 27: a single coordinator has no validators but the staking rules are shown; backing
    an account that is neither a provider nor a validator is not found and changes nothing."""
    view = net.validators()
    assert view["validators"] == []
    assert view["staking"]["validator_fee_bps"] == 5000
    stranger = gridmint.connect(url, key=tmp_path / "stranger.key").account
    balance = net.balance()["balance"]
    with pytest.raises(gridmint.GridmintError) as refused:
        net.delegate(stranger, "10")
    assert (refused.value.status, refused.value.code) == (404, "not_found")
    assert net.balance()["balance"] == balance and "delegations" not in net.balance()


def test_gpu_classes_on_a_network_without_gpus(net):
    """Rules 28: these providers offer no GPU, so nobody claims a class; a malformed provider
    id is refused before anything is sent."""
    view = net.gpu_classes()
    assert (view["proven"], view["pending"]) == ([], [])
    assert view["now"] > 0
    filtered = net.gpu_classes(cls="GPU A (10de:2684)", provider=net.account)
    assert (filtered["proven"], filtered["pending"]) == ([], [])
    with pytest.raises(gridmint.GridmintError, match="account id"):
        net.gpu_classes(provider="not-hex")


def test_a_job_can_be_cancelled(net):
    job = net.submit({"module": PI_WASM.name, "fuel": 200_000_000, "deadline": "10m",
                      "requirements": {"region": "nowhere"},
                      "task": [{"args": ["1000", "1"]}]}, base_dir=PI_WASM.parent)
    locked = int(net.balance()["in_escrow"])
    assert locked > 0
    net.cancel(job)
    assert net.job(job)["status"] == "cancelled"
    assert int(net.balance()["in_escrow"]) == 0
    with pytest.raises(gridmint.GridmintError, match="cancelled"):
        net.wait(job, progress=False)


def test_bad_input_is_a_clear_error_and_changes_nothing(net, url, tmp_path):
    other = gridmint.connect(url, key=tmp_path / "other.key").account
    balance = net.balance()
    with pytest.raises(gridmint.GridmintError, match="unknown field"):
        net.submit({"module": PI_WASM.name, "tsk": []}, base_dir=PI_WASM.parent)
    with pytest.raises(gridmint.GridmintError, match="nope.wasm"):
        net.submit({"module": "nope.wasm", "task": [{"args": []}]})
    with pytest.raises(gridmint.GridmintError, match="account id"):
        net.transfer("not-an-account", "1")
    with pytest.raises(gridmint.GridmintError, match="insufficient_funds"):
        net.transfer(other, "1000000000")
    with pytest.raises(gridmint.GridmintError, match="not_found|unknown job"):
        net.job(999_999)
    assert net.balance()["balance"] == balance["balance"]


def test_a_reservation_is_leased_cancelled_and_ends(net, network, tmp_path):
    """Rules 26 from Python: a requester reserves two slots and a provider (with its own key)
    leases one; a stranger may not cancel; the owner cancels, the open slot is refunded at once,
    the lease runs out its period and is paid for it, and the reservation ends."""
    url, root = network
    provider = gridmint.connect(url, key=root / "provider-2" / "provider.key")
    assert provider.account in {p["id"] for p in
                                json.load(urllib.request.urlopen(f"{url}/v1/providers", timeout=5))}
    price = 5_000_000_000
    fee = int(net.network()["action_fee"])
    before = int(net.balance()["balance"])

    # Both slots' first periods are prepaid; nobody holds a lease yet.
    rid = net.reserve(2, "3s", 3, "5")
    view = net.reservation(rid)
    assert (view["owner"], view["slots"], view["period_ms"], view["periods"]) == \
        (net.account, 2, 3000, 3)
    assert (view["status"], view["open_slots"], view["leases"]) == ("open", 2, [])
    assert int(view["price_per_slot"]) == price and int(view["open_held"]) == 2 * price
    assert int(net.balance()["balance"]) == before - 2 * price - fee

    # The provider leases one slot (offers stay open for one period: it answers within it).
    accepted = provider.accept_reservation(rid, 1)
    assert any(e["event"] == "reservation_accepted" for e in accepted["events"])
    view = net.reservation(rid)
    assert view["status"] == "active" and view["open_slots"] == 1
    [lease] = view["leases"]
    assert (lease["provider"], lease["slots"]) == (provider.account, 1)
    assert rid in [r["id"] for r in net.reservations(owner=net.account)]
    assert [r["id"] for r in net.reservations(provider=provider.account)] == [rid]
    assert rid in [r["id"] for r in net.reservations()]

    # Only the owner cancels; an unknown reservation is not found. Neither changes anything.
    with pytest.raises(gridmint.GridmintError, match="not_owner") as refused:
        provider.cancel_reservation(rid)
    assert (refused.value.code, refused.value.status) == ("not_owner", 403)
    with pytest.raises(gridmint.GridmintError, match="not_found") as unknown:
        net.reservation(999_999)
    assert (unknown.value.code, unknown.value.status) == ("not_found", 404)
    assert gridmint.GridmintError("local").code is None
    assert net.reservation(rid)["status"] == "active"

    # The owner cancels: the open slot comes back now, the lease runs out its period.
    cancelled = net.cancel_reservation(rid)
    refunds = [int(e["amount"]) for e in cancelled["events"] if e["event"] == "reservation_refunded"]
    assert refunds == [price]
    view = net.reservation(rid)
    assert view["status"] == "cancelling" and view["cancelled"]
    assert (view["open_slots"], int(view["open_held"]), int(view["refunded"])) == (0, 0, price)
    assert len(view["leases"]) == 1

    deadline = time.monotonic() + 30
    while view["status"] != "ended":
        assert time.monotonic() < deadline, f"never ended: {view}"
        time.sleep(0.2)
        view = net.reservation(rid)
    assert view["leases"] == [] and view.get("ended")
    # The provider was paid every period it held the slot (a renewal, if one came before the
    # cancellation, was taken from the balance); the slot nobody took was refunded in full.
    paid, refunded = int(view["paid"]), int(view["refunded"])
    assert paid >= price and paid % price == 0 and refunded == price
    assert int(net.balance()["balance"]) == before - paid - 2 * fee
    assert provider.reservations(provider=provider.account) == []
    kinds = {item["event"]["event"] for item in net.history()}
    assert {"reserved", "reservation_refunded"} <= kinds

    # Bad input is refused before anything is signed.
    with pytest.raises(ValueError, match="duration"):
        net.reserve(1, "soon", 1, "1")
    with pytest.raises(ValueError, match="base units"):
        net.reserve(1, 60, 1, "0.0000000001")


def test_https_with_the_coordinator_s_pin(tmp_path):
    """A coordinator serving TLS is reached by pinning its key, as with the CLI's --pin; a
    session that trusts nothing of it is refused and told the pin it would need."""
    port = free_port()
    data = tmp_path / "coordinator"
    log = open(tmp_path / "tls.log", "w")
    proc = subprocess.Popen([str(BIN), "coordinator", "--dev", "--tls", "--listen",
                             f"127.0.0.1:{port}", "--data-dir", str(data)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            if (data / "tls" / "pin").exists():
                break
            time.sleep(0.1)
        time.sleep(0.5)
        pin = (data / "tls" / "pin").read_text().strip()
        url = f"https://127.0.0.1:{port}"
        with pytest.raises(gridmint.GridmintError, match="sha256/"):
            gridmint.connect(url, key=tmp_path / "a.key").status()
        net = gridmint.connect(url, key=tmp_path / "a.key", pin=pin)
        assert net.status()["log_length"] >= 0
        net.faucet()
        assert int(net.balance()["balance"]) > 0
    finally:
        # The trust is the process's: back to the default for the other tests.
        gridmint.set_trust([], None, False)
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
