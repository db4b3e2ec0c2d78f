#!/usr/bin/env bash
# Install (first run only) and start TheraLab on http://127.0.0.1:7860 with the embedded model.
# Extra arguments go to app.py, e.g. ./start.sh --port 8000 --data-dir /srv/theralab
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/install.sh
exec .venv/bin/python app.py "$@"
