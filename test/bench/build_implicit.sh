#!/usr/bin/env bash
# test/bench/build_implicit.sh - build the `implicit` library (benfred/implicit,
# MIT) from its release tarball, for the bench's side-by-side timing of its
# CPU BPR only.  implicit is never a dependency of dsl_rec: it is built into
# an ignored folder, imported by test/bench/implicit_bpr.py through
# PYTHONPATH, and nothing of it enters the repository.
#
# Usage: build_implicit.sh TARBALL SETUP_PY DEST [PYTHON]
#   TARBALL   implicit-0.7.3.tar.gz (a `git archive` of tag v0.7.3)
#   SETUP_PY  a setuptools build of its Cython extensions (upstream builds
#             with scikit-build-core, which Debian 12 lacks)
#   DEST      folder to build in (emptied first unless it holds a finished
#             build of the same tarball); prints the folder to put on
#             PYTHONPATH on the last line of stdout
#   PYTHON    the interpreter the Debian packages python3-numpy,
#             python3-scipy, cython3 ... serve (default /usr/bin/python3)
# Exit status: 0 built (or reused), 2 tarball or setup script absent (the
# caller skips the comparison), 1 the build failed.
set -euo pipefail

TARBALL=$1
SETUP=$2
DEST=$3
PY=${4:-/usr/bin/python3}

if [ ! -f "$TARBALL" ]; then
	echo "implicit: $TARBALL not found; skipping the comparison with implicit" >&2
	exit 2
fi
if [ ! -f "$SETUP" ]; then
	echo "implicit: $SETUP not found; skipping the comparison with implicit" >&2
	exit 2
fi
"$PY" -c 'import numpy, scipy, Cython, setuptools, tqdm, threadpoolctl' 2>/dev/null || {
	echo "implicit: $PY lacks numpy/scipy/Cython/setuptools/tqdm/threadpoolctl" \
		"(Debian: python3-dev python3-numpy python3-scipy cython3 g++ python3-setuptools python3-tqdm python3-threadpoolctl)" >&2
	exit 1
}

sum=$(sha256sum "$TARBALL" | cut -d' ' -f1)
top=$(tar tzf "$TARBALL" | awk -F/ 'NR == 1 { print $1 }')
src=$DEST/$top
stamp=$src/.built-$sum
if [ -f "$stamp" ] && (cd /tmp && PYTHONPATH=$src "$PY" -c 'import implicit.cpu.bpr') 2>/dev/null; then
	echo "implicit: reusing the build in $src" >&2
	echo "$src"
	exit 0
fi

rm -rf "$DEST"
mkdir -p "$DEST"
tar xzf "$TARBALL" -C "$DEST"
# setuptools 66 (Debian 12) rejects pyproject.toml's `license` field, and
# the file names scikit-build-core as the backend: move it out of the way.
[ ! -f "$src/pyproject.toml" ] || mv "$src/pyproject.toml" "$src/pyproject.toml.upstream"
cp "$SETUP" "$DEST/build_setup.py"
echo "implicit: building $top in $src (Cython -> C++, a few minutes)" >&2
if ! (cd "$src" && "$PY" ../build_setup.py build_ext --inplace) >"$DEST/build.log" 2>&1; then
	tail -20 "$DEST/build.log" >&2
	echo "implicit: build failed (log: $DEST/build.log)" >&2
	exit 1
fi
(cd /tmp && PYTHONPATH=$src "$PY" -c 'import implicit.cpu.bpr') || {
	echo "implicit: built, but implicit.cpu.bpr does not import" >&2
	exit 1
}
touch "$stamp"
echo "$src"
