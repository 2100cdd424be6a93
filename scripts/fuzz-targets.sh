#!/bin/sh
# fuzz-targets.sh lists every fuzz target of the module, one a line, as
# ./package:FuzzName (what `make fuzz` runs): each func FuzzXxx(f *testing.F)
# in a _test.go file, so that a new fuzzer is run without being listed.
set -eu
cd "$(dirname "$0")/.."
find . -name '*_test.go' -not -path './.git/*' -not -path '*/testdata/*' -not -path '*/vendor/*' |
	xargs grep -H -E '^func Fuzz[A-Za-z0-9_]*\([A-Za-z_][A-Za-z0-9_]* \*testing\.F\)' |
	sed -E 's#^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*#\1:\2#' |
	LC_ALL=C sort
