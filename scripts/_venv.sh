# Sourced by scripts/run, scripts/test, scripts/check and scripts/bench.
# Creates .venv on first use and reinstalls whenever pyproject.toml changes,
# so a fresh clone needs nothing but python3 (>= 3.11) on PATH.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
STAMP="$VENV/.p2pshare-installed"
want=$(cksum < "$ROOT/pyproject.toml")
if [ ! -x "$PY" ] || [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
    echo "setting up $VENV ..." >&2
    "${PYTHON:-python3}" -m venv "$VENV"
    "$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
    "$PY" -m pip install --quiet --disable-pip-version-check -e "$ROOT[test,lint]" >&2
    echo "$want" > "$STAMP"
fi
