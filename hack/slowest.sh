#!/bin/bash
# Prints the slowest tests of a `go test -v` log, slowest first: top-level
# tests and subtests, so that the suite's time budget stays visible.
# Usage: hack/slowest.sh LOG [N]
set -euo pipefail
log=$1
n=${2:-15}
echo "== The $n slowest tests (of $(grep -cE -- '^ *--- (PASS|FAIL|SKIP)' "$log") results)"
grep -E -- '^ *--- (PASS|FAIL|SKIP): ' "$log" |
	sed -E 's/^( *)--- ([A-Z]+): ([^ ]+) \(([0-9.]+)s\).*/\4 \2 \1\3/' |
	sort -rn -k1,1 | head -n "$n" |
	awk '{ printf "%8.1f s  %-4s  %s\n", $1, $2, substr($0, index($0, $3)) }'
