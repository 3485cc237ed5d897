# Part "99-charts" of scripts/bench (sourced; runs last): SVG charts of the JSON results the other
# parts left in BENCH_RESULTS (default benchmarks/, next to BENCHMARKS.md), drawn by
# scripts/lib/charts.py with Debian's python3-matplotlib (installed here when missing; the
# system python, not one on PATH that may lack it).
if ! /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  echo "bench: installing python3-matplotlib" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-matplotlib >&2
fi
/usr/bin/python3 scripts/lib/charts.py "${BENCH_RESULTS:-$PWD/benchmarks}"
