#!/usr/bin/env bash
# The 1-16 worker scaling curve on a lent 16-core machine, in one short call (perf/README.md, "On a 16-core
# machine"). Nothing can be fetched there: the packages its Python lacks travel as wheels in .whl/.
#
#   EVENTS   events per run (default 50,000,000: at 5,000,000 the coordinator's start-up caps the scaling)
#   OUT      where results.json, results.md, chart.png and the log go (default perf/out)
#   PYTHON   the interpreter (default python3); SKIP_WHEELS=1 uses its packages as they are
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
OUT=${OUT:-perf/out}
mkdir -p "$OUT/bench"
if [ "${SKIP_WHEELS:-0}" != 1 ]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1
{
    "$PYTHON" -c 'import os, platform, numpy, pyarrow, mimesis, typer, rich, orjson, faker
print("python", platform.python_version(), "cpus", os.cpu_count(), "numpy", numpy.__version__,
      "pyarrow", pyarrow.__version__, "typer", typer.__version__, "mimesis", mimesis.__version__)'
    (lscpu 2>/dev/null | grep -E "Model name|^CPU\(s\)|Thread|Core|Socket") || true
    "$PYTHON" -m compileall -q generator
    "$PYTHON" perf/bench.py --events "${EVENTS:-50000000}" --max-workers "${MAX_WORKERS:-16}" \
        --instance-type "${INSTANCE_TYPE:-device-16-core}" --out "$OUT/bench"
} 2>&1 | tee "$OUT/log"
