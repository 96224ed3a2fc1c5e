#!/bin/bash
# Runs every Fuzz test of the module for FUZZTIME each (default 5s); the
# seed corpora also run in every `go test`. Failing inputs land in
# testdata/fuzz/ of the package, where `go test` replays them from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-5s}
grep -rl --include='*_test.go' '^func Fuzz' pkg | sort | while read -r file; do
	pkg=./$(dirname "$file")
	for fn in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | cut -d' ' -f2); do
		echo "fuzz: $pkg $fn ($fuzztime)" >&2
		go test -run='^$' -fuzz="^${fn}\$" -fuzztime="$fuzztime" "$pkg" >/dev/null
	done
done
