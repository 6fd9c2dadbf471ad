#!/bin/sh
# deb-version.sh DESCRIBE — turn `git describe --tags --always --dirty` output
# into a Debian version that sorts the way releases do:
#   v1.2.0                 → 1.2.0
#   v1.2.0-3-gabc1234      → 1.2.0+3.gabc1234   (after 1.2.0, before 1.2.1)
#   v1.2.0-3-gabc1234-dirty→ 1.2.0+3.gabc1234.dirty
#   abc1234 (no tag yet)   → 0.0.0~gitabc1234   (before any release)
# A Debian version must start with a digit, and a '-' would be read as the
# Debian revision, so none is left.
set -eu
d=${1:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
# A tag looks like v1.2 or 1.2.3; a bare abbreviated hash may start with a
# digit too (6f8c175), so the dot decides.
if printf '%s\n' "$d" | grep -Eq '^[vV]?[0-9]+\.[0-9]'; then
	d=${d#[vV]}
	# 1.2.0-3-gabc → 1.2.0+3.gabc; a pre-release (1.2.0-rc1) sorts before
	# the release with '~'.
	v=$(printf '%s\n' "$d" | sed -E \
		-e 's/-dirty$/.dirty/' \
		-e 's/^([^-]*)-([0-9]+)-(g[0-9a-f]+)/\1+\2.\3/' \
		-e 's/^([0-9][^-+]*)-/\1~/' \
		-e 's/-/./g')
else
	v=0.0.0~git$(printf '%s\n' "$d" | sed -E -e 's/-dirty$/.dirty/' -e 's/[^A-Za-z0-9.+~]/./g')
fi
printf '%s\n' "$v"
