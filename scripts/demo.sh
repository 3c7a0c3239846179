#!/usr/bin/env bash
# `make demo`: setup-mail.yml end to end against the local sandbox (see scripts/demo.py).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec .venv/bin/python -m scripts.demo "$@"
