#!/usr/bin/env bash
# One command, fresh clone to results: set up .venv, then analyse the given images/folders/videos, or (with no
# arguments) the bundled astronaut photo and a clip made from it. Results land in ./ferkit-results/.
#   bash scripts/run_demo.sh                                    # bundled sample
#   bash scripts/run_demo.sh ../shared/data/videos/woman_talking.mp4 --fps all
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
if [ $# -eq 0 ]; then
  exec .venv/bin/ferkit demo
fi
exec .venv/bin/ferkit analyze "$@"
