# %% [markdown]
# # Monte Carlo pi on a Gridmint network, from Python
#
# A notebook-style script (each `# %%` is a cell in Jupyter or VS Code). Start a network first
# (README: `gridmint demo --keep`, or the hand-run network), then
# `pip install ./sdk/python` and run this with `GRIDMINT_COORDINATOR` set to its URL.

# %%
import math
from pathlib import Path

import gridmint

repo = Path(__file__).resolve().parents[2] if "__file__" in globals() else Path("../..").resolve()
net = gridmint.connect()          # $GRIDMINT_COORDINATOR, key in $GRIDMINT_HOME/requester.key
net.faucet()                      # development networks only
print(net, net.balance()["balance"], "base units")

# %% The pi job of examples/pi.toml, in five lines
job = net.submit(repo / "examples" / "pi.toml")
net.wait(job)
hits, samples = (sum(int(l.split()[i]) for l in net.output(job).decode().splitlines()) for i in (0, 1))
print(f"pi ~= {4 * hits / samples:.6f} from {samples:,} samples")

# %% One module over many argument sets: a sweep of sample sizes, outputs in order
sizes = [1_000, 10_000, 100_000, 1_000_000]
outputs = net.map(repo / "guests" / "pi.wasm", [[n, seed] for seed, n in enumerate(sizes)],
                  fuel=2_000_000_000)
for n, out in zip(sizes, outputs):
    h, s = map(int, out.split())
    print(f"{n:>9,} samples: pi ~= {4 * h / s:.5f} (error {abs(4 * h / s - math.pi):.1e})")

# %% What it cost
view = net.job(job)
print("paid", int(view["escrow"]["paid"]) / 1e9, "GRID; refunded", int(view["escrow"]["refunded"]) / 1e9)
