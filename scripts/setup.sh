#!/usr/bin/env bash
# Sets up a fresh Debian/Ubuntu machine for the sandbox: the allocator libraries, the
# distribution's gdb and chromium (for the report's browser test), with apt-get when root or
# sudo is available, and a virtualenv in .venv with the package, its dev tools and the gdb
# `sandbox inspect` calls with (gdb 18 from PyPI: Debian 12's 13.1 kills targets on AMX CPUs).
# Idempotent: a second run only checks. Usage: scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 gdb chromium)
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo"; else SUDO="none"; fi
    if [ "$SUDO" = "none" ]; then
        echo "setup: packages missing (${missing[*]}); install them with:" >&2
        echo "    sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
        echo "setup: continuing; runs under missing allocators fail until then (see 'sandbox doctor')," >&2
        echo "setup: 'sandbox inspect' needs gdb, and without chromium the report's browser test is skipped." >&2
    else
        echo "setup: installing ${missing[*]} with apt-get"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
        echo "setup: '$PYTHON -m venv' failed; install the venv module (e.g. apt-get install -y python3-venv) and retry" >&2
        exit 1
    fi
fi
stamp="$VENV/.installed-$(sha1sum pyproject.toml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    echo "setup: installing the sandbox and its tools into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install -q -e ".[dev]"
    rm -f "$VENV"/.installed-* && touch "$stamp"
fi
# `sandbox inspect` calls into running processes with the gdb installed into .venv (gdb 18,
# from PyPI's gdb-for-pwndbg); its first run links libpython into .venv. Check that it runs.
if [ -x "$VENV/bin/gdb" ] && ! "$VENV/bin/gdb" --version >/dev/null 2>&1; then
    echo "setup: $VENV/bin/gdb does not run (it needs this Python's shared libpython);" >&2
    echo "setup: on Debian: apt-get install -y libpython3-dev; 'sandbox inspect' falls back to the system gdb" >&2
fi
