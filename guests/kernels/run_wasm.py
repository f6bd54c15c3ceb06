#!/usr/bin/env python3
"""Runs one wasm32-wasi (preview 1) command module with wasmtime's Python API.

usage: run_wasm.py FILE.wasm [ARGS...]

A stand-in runner for check.sh where the `wasmtime` command-line tool is not
installed (`pip install wasmtime` provides the module).  The guest gets its
arguments (argv[0] is the file name), stdout and stderr, and nothing else: no
files, no environment.  Exits with the guest's exit status (1 on a trap).
Only for checking the kernels; Gridmint runs them in its own sandbox.
"""
import sys

import wasmtime


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: run_wasm.py FILE.wasm [ARGS...]", file=sys.stderr)
        return 2
    path = sys.argv[1]
    engine = wasmtime.Engine()
    module = wasmtime.Module.from_file(engine, path)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store = wasmtime.Store(engine)
    wasi = wasmtime.WasiConfig()
    wasi.argv = [path] + sys.argv[2:]
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    store.set_wasi(wasi)
    instance = linker.instantiate(store, module)
    start = instance.exports(store)["_start"]
    try:
        start(store)
    except wasmtime.ExitTrap as exit_trap:
        return exit_trap.code
    except wasmtime.Trap as trap:
        print(f"run_wasm.py: trap: {trap}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
