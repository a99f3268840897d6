#!/usr/bin/env bash
# The preference hot path of this checkout beside an earlier revision, alternating on one machine in one run:
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/enclave REDIS_URL=redis://127.0.0.1:6379/14 \
#     bench/preference_before_after.sh REV [ROUNDS] [-- options of bench/preference_collection.py]
# Each round runs REV, then this checkout, with the same options (default: 10k comparisons, 20 s windows,
# submit-and-next); compare the tables. REV is checked out in a temporary worktree, removed at the end.
set -euo pipefail
rev=${1:?usage: bench/preference_before_after.sh REV [ROUNDS] [-- options]}
rounds=${2:-2}
shift $(( $# >= 2 ? 2 : 1 ))
[ "${1:-}" = "--" ] && shift
options=("$@")
[ ${#options[@]} -eq 0 ] && options=(--comparisons 10000 --duration 20 --crowd and-next)
here=$(git rev-parse --show-toplevel)
python=$here/.venv/bin/python
old=$(mktemp -d)/before
git -C "$here" worktree add --quiet --detach "$old" "$rev"
trap 'git -C "$here" worktree remove --force "$old"' EXIT
# The project is installed into the venv from this checkout: an app module the older tree lacks (an admin.py
# that Django's autodiscovery asks for) would be found here instead. An empty one keeps the older tree whole.
for app in accounts annotation preferences releases training; do
  [ -e "$old/$app/admin.py" ] || : > "$old/$app/admin.py"
done
for round in $(seq 1 "$rounds"); do
  for tree in "$old" "$here"; do
    echo "=== round $round: $(git -C "$tree" rev-parse --short HEAD) ($tree)"
    (cd "$tree" && "$python" bench/preference_collection.py "${options[@]}")
  done
done
