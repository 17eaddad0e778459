#!/usr/bin/env bash
# Regenerates requirements.lock from a clean venv holding requirements.txt + requirements-test.txt.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q -r "$ROOT/requirements.txt" -r "$ROOT/requirements-test.txt"
{
  echo "# Full lock of the transitive dependencies: pip freeze of a clean venv with requirements.txt"
  echo "# and requirements-test.txt (Python 3.11, Linux x86_64). Used as a constraints file (-c)."
  echo "# Regenerate with: scripts/lock.sh"
  # a local CPU build of torch carries a +cpu label; the lock names the plain release.
  # --all keeps setuptools (torch depends on it, and `pip install -e .` builds with it):
  # unlocked, a new release could refuse pyproject.toml; pip itself is upgraded by setup.sh.
  "$tmp/venv/bin/pip" freeze --all --exclude pip | sed -e 's/^torch==\([0-9.]*\)+cpu$/torch==\1/'
} > "$ROOT/requirements.lock"
echo "wrote requirements.lock"
