#!/bin/bash
# Runs every Fuzz test of the module for FUZZTIME each (default 5s); the
# seed corpora also run in every `go test`. Failing inputs land in
# testdata/fuzz/ of the package, where `go test` replays them from then on.
# A failure prints go test's output. One that found no failing input (the
# fuzzing engine itself gave up, which a loaded machine can cause) is tried
# once more; a failing input always fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-5s}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
fuzz() { # PKG FN
	go test -run='^$' -fuzz="^$2\$" -fuzztime="$fuzztime" "$1" >"$out" 2>&1
}
grep -rl --include='*_test.go' '^func Fuzz' pkg | sort | while read -r file; do
	pkg=./$(dirname "$file")
	for fn in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | cut -d' ' -f2); do
		echo "fuzz: $pkg $fn ($fuzztime)" >&2
		fuzz "$pkg" "$fn" && continue
		cat "$out" >&2
		if grep -q 'Failing input written to' "$out"; then
			exit 1
		fi
		echo "fuzz: $pkg $fn failed without a failing input; trying once more" >&2
		fuzz "$pkg" "$fn" || { cat "$out" >&2; exit 1; }
	done
done
