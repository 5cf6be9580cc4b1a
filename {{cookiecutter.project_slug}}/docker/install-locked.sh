#!/bin/sh
# install-locked.sh LOCK VENV: a new virtual environment holding exactly the files LOCK names,
# for the Dockerfile's builder stages.
#
# Every file is checked against its hash in the lock, and nothing else is pulled in. It comes
# from /tmp/wheels alone, with no index, when that folder holds every one (`make wheelhouse`);
# else from the index (EXTRA_INDEX_URL adds one), /tmp/wheels included. Then the venv is
# slimmed: no pip or setuptools (nothing installs at run time), no test suites, and bytecode
# compiled once here. "unchecked-hash" .pyc files stay valid whatever timestamps the files get
# when copied into a later stage. A file written for a newer Python (some packages ship one)
# cannot be compiled, nor imported: it is left as it is (-qq names no such file).
set -eu
lock=$1
venv=$2
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1

python -m venv "$venv"
set -- --no-compile --require-hashes --no-deps --find-links /tmp/wheels --requirement "$lock"
if "$venv/bin/pip" install --quiet --no-index "$@" 2>/dev/null; then
    echo "installed $lock from wheels/, with no index"
else
    "$venv/bin/pip" install ${EXTRA_INDEX_URL:+--extra-index-url "$EXTRA_INDEX_URL"} "$@"
fi
"$venv/bin/pip" uninstall --yes --quiet pip setuptools
find "$venv" -depth -type d \( -name tests -o -name __pycache__ \) -exec rm -rf {} +
python -m compileall -qq -j 0 --invalidation-mode unchecked-hash "$venv" || true
