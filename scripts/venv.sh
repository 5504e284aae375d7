# Sourced by scripts/serve and scripts/test: create ./.venv and install the project into it.
# ensure_venv EXTRAS   (EXTRAS is "" or e.g. "test"); reinstalls only when pyproject.toml changed.

ensure_venv() {
  local extras="$1" spec="." stamp=".venv/.deskhand-installed${1:+-$1}"
  [ -n "$extras" ] && spec=".[$extras]"
  local python="${PYTHON:-python3}"
  if [ ! -x .venv/bin/python ]; then
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "Deskhand needs Python 3.11 or newer as '$python' (set PYTHON=/path/to/python3.11)." >&2
      return 1
    fi
    if ! "$python" -m venv .venv 2>/dev/null; then
      echo "Cannot create a virtualenv: install the venv module (Debian: apt-get install python3-venv)." >&2
      return 1
    fi
  fi
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "Installing Deskhand${extras:+ with [$extras]} into .venv ..." >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
    touch "$stamp"
  fi
}
