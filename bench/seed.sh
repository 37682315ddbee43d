#!/usr/bin/env bash
# The seed workloads against the seeds' own ways (bench/seed.py says what
# is measured). Prints a markdown table. Sizes: SEED_RAGGED_MIB (1024),
# SEED_NPY_MIB (1024), SEED_GENOME_ROWS (200000), SEED_HTTP_ITEMS (1000);
# peak memory stays under ~3 GB. A few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
exec /usr/bin/python3 bench/seed.py "$@"
