#!/usr/bin/env bash
# Fetches the interpreters the Python and JavaScript examples run on, from PyPI, pinned by hash:
#
#   runno 0.2.1 (sdist, https://pypi.org/project/runno/0.2.1/), which carries
#   - python-3.11.3.wasm      CPython 3.11.3 for WASI preview 1 (VMware Wasm Labs'
#                             webassembly-language-runtimes build), 20 MB
#   - python-3.11.3.tar.gz    its standard library (usr/local/lib/python311.zip), mounted
#                             read-only at /usr/local
#   - wasmedge_quickjs.wasm   QuickJS for WASI (second-state/wasmedge-quickjs), 4 MB
#   - clang.wasm              clang for WASI, 31 MB: the "big module" of the download tests
#
# Nothing is committed: the files land beside this script (git-ignored) and are checked against
# the hashes below, the archive's as PyPI lists it, and each file's. Idempotent and safe to run
# from several processes at once (a lock, then a check of what is there).
#
#   bash examples/runtimes/fetch.sh            # into examples/runtimes/
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
url="https://files.pythonhosted.org/packages/a0/ee/d5326365f32167561f9d7c20da13b74cb3c817046beb92603092e5b6f279/runno-0.2.1.tar.gz"
archive_sha256="753450c3692fd0c758145046cc65fe28c9097fd77de895f4aa60347c11c4bb38"
declare -A want=(
  [python-3.11.3.wasm]=658cb6add2bbf8dfe84d67fb85430956d5a8b2b1d694d33432d654cdf048f813
  [python-3.11.3.tar.gz]=8c42694e45f2f1162114c70507c3da4c7cf983663e2b95660af521a9685d2a0c
  [wasmedge_quickjs.wasm]=85922baafd4385bc908d766989948df9ab28f8f0c8afd2ab6b35a4950570d0f6
  [clang.wasm]=2a466f0e990329d3230b869d04fc20803eae96a7feb3a3f6c93e25a77b8aed1d
)

have_all() {
  for f in "${!want[@]}"; do
    [[ -f "$here/$f" ]] || return 1
    [[ "$(sha256sum "$here/$f" | cut -d' ' -f1)" == "${want[$f]}" ]] || return 1
  done
  [[ -f "$here/python/usr/local/lib/python311.zip" ]]
}

exec 9>"$here/.fetch.lock"
flock 9
if have_all; then
  exit 0
fi

tmp="$(mktemp -d "$here/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "fetching runno 0.2.1 from PyPI (47 MB) for the interpreter examples" >&2
curl --fail --silent --show-error --location --retry 3 -o "$tmp/runno.tar.gz" "$url"
got="$(sha256sum "$tmp/runno.tar.gz" | cut -d' ' -f1)"
if [[ "$got" != "$archive_sha256" ]]; then
  echo "runno-0.2.1.tar.gz has sha256 $got, not $archive_sha256: refusing it" >&2
  exit 1
fi
for f in "${!want[@]}"; do
  tar -xzf "$tmp/runno.tar.gz" -C "$tmp" "runno-0.2.1/cli/langs/$f"
  got="$(sha256sum "$tmp/runno-0.2.1/cli/langs/$f" | cut -d' ' -f1)"
  if [[ "$got" != "${want[$f]}" ]]; then
    echo "$f has sha256 $got, not ${want[$f]}: refusing it" >&2
    exit 1
  fi
done
mkdir -p "$tmp/python"
tar -xzf "$tmp/runno-0.2.1/cli/langs/python-3.11.3.tar.gz" -C "$tmp/python" --no-same-owner
# Only regular files and directories go into a tree blob: drop the placeholder's siblings if any.
find "$tmp/python" ! -type f ! -type d -delete
rm -rf "$here/python"
mv "$tmp/python" "$here/python"
for f in "${!want[@]}"; do
  mv "$tmp/runno-0.2.1/cli/langs/$f" "$here/$f"
done
echo "runtimes ready in $here" >&2
