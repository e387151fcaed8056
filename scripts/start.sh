#!/usr/bin/env bash
# Installs mcviz and starts the app on the shipped checkpoints: http://localhost:8501
# The port: PORT=8600 bash scripts/start.sh (or Streamlit's own STREAMLIT_SERVER_PORT, or --server.port 8600).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# .streamlit/config.toml (read from here, the repository root) sets the upload limit and the rest.
# Two malloc arenas: Streamlit runs a thread per session, glibc gives each thread that meets another in
# malloc an arena of its own, and each arena keeps its own peak (the app keeps freed memory: mcviz.memory).
# 16 sessions uploading 48 MP photos at once peaked at 1.9-2.0 GB, and at 1.6 GB in two arenas
# (docs/performance.md). It must be set before the process starts; the Dockerfile and
# benchmarks/serving.py set it too.
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
exec .venv/bin/streamlit run app/main.py --server.port "${PORT:-${STREAMLIT_SERVER_PORT:-8501}}" \
  --browser.gatherUsageStats false "$@"
