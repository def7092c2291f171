# Sourced by scripts/run, scripts/test, scripts/check and scripts/bench.
# Creates .venv on first use and reinstalls whenever pyproject.toml changes,
# so a fresh clone needs nothing but python3 (>= 3.11) on PATH. The
# installer's own output goes to .venv/install.log (shown only on failure).
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
STAMP="$VENV/.p2pshare-installed"
want=$(cksum < "$ROOT/pyproject.toml")
if [ ! -x "$PY" ] || [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
    printf 'p2pshare: setting up %s (first run; about a minute) ... ' "$VENV" >&2
    log="$ROOT/.venv-install.log"
    if "${PYTHON:-python3}" -m venv "$VENV" >"$log" 2>&1 &&
        "$PY" -m pip install --disable-pip-version-check --upgrade pip >>"$log" 2>&1 &&
        "$PY" -m pip install --disable-pip-version-check -e "$ROOT[test,lint]" >>"$log" 2>&1; then
        mv "$log" "$VENV/install.log"
        echo "$want" > "$STAMP"
        echo "done" >&2
    else
        echo "failed" >&2
        tail -n 20 "$log" >&2
        echo "p2pshare: the whole installer log is $log" >&2
        exit 1
    fi
fi
