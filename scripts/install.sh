#!/usr/bin/env bash
# Create .venv, install requirements.txt into it, and build llama.cpp for this CPU.
# Each step is skipped when nothing changed since last time (a stamp in .venv says so).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# The end-to-end tests (tests/e2e) drive Debian's chromium; install it when we can (root and apt-get).
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null \
    || echo "warning: could not install chromium; the browser tests (tests/e2e) will be skipped" >&2
fi
stamp=.venv/.requirements.sha256
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "Installing requirements into .venv..."
  .venv/bin/python -m pip install --quiet --upgrade pip
  # llama-cpp-python is built by scripts/build_llama.py with flags chosen for this CPU, never by
  # a plain pip install (its default -march=native build crashes on some AMX hosts).
  grep -v -i '^[[:space:]]*llama[-_]cpp[-_]python' requirements.txt > .venv/requirements-no-llama.txt
  .venv/bin/python -m pip install --quiet -r .venv/requirements-no-llama.txt
  echo "$want" > "$stamp"
fi
# Builds (first run: ~6-10 minutes), smoke-checks and, on a crash, rebuilds with safer flags.
.venv/bin/python scripts/build_llama.py
