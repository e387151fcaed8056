#!/usr/bin/env bash
# Installs mcviz and starts the app on the shipped checkpoints: http://localhost:8501
# The port: PORT=8600 bash scripts/start.sh (or Streamlit's own STREAMLIT_SERVER_PORT, or --server.port 8600).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# .streamlit/config.toml (read from here, the repository root) sets the upload limit and the rest
exec .venv/bin/streamlit run app/main.py --server.port "${PORT:-${STREAMLIT_SERVER_PORT:-8501}}" \
  --browser.gatherUsageStats false "$@"
