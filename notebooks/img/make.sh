#!/usr/bin/env bash
# Redraw the "where this notebook is going" pictures, one per stage, each
# from a real build in a fresh sandbox.  Run from the repository root:
#   bash notebooks/img/make.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
LABKIT=${LABKIT:-.venv/bin/labkit}
for stage in reset netns veth bridge host nat internet portforward; do
  "$LABKIT" run -- sh -c "labkit up $stage -q && labkit graph -q -o notebooks/img/$stage.png"
done
"$LABKIT" run -- sh -c "labkit up bridge -n 8 -q && labkit graph -q -o notebooks/img/bridge-8.png"
"$LABKIT" run -- sh -c "labkit up bridge -n 200 -q && labkit graph -q -o notebooks/img/hundreds.png"
# a real ping from red to the internet, its hops numbered on the graph (notebook 09)
"$LABKIT" run -- sh -c "labkit up internet -q && ${PYTHON:-.venv/bin/python} -c 'from labkit import trace; trace.trace(\"red\", \"203.0.113.8\").draw().savefig(\"notebooks/img/troubleshooting.png\", dpi=150)'"
echo "pictures in notebooks/img/"
