#!/usr/bin/env bash
# Mutation testing of the application and infrastructure modules with mutmut 3 (the `dev`
# extra: pip install -e '.[dev]'). Not part of CI (minutes per module); run it before closing
# a change to one of these modules, and compare with the last results. docs/testing.md says
# how to read the results.
#
#   benchmarks/mutation.sh                 # every module in the table below
#   benchmarks/mutation.sh atomic sample   # some of them
#
# Each module is mutated in its own scratch copy of the working tree (WORK/NAME), with only
# the tests that exercise it, so one run takes minutes rather than the whole suite per mutant.
# Results go to OUT/NAME.json (killed/survived/timeout/... counts) and OUT/NAME-survivors.txt
# (the diff of every surviving mutant). Exit status 0 even when mutants survive: reading the
# survivors is the point.
#
# Environment: MUTMUT (default: mutmut), JOBS (parallel workers, default 2), WORK (default
# build/mutation), OUT (default benchmarks/results/mutation). The compiled extension
# (seqdbr/rnn/_cpu_cells*.so) is copied when built.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MUTMUT=${MUTMUT:-mutmut}
JOBS=${JOBS:-2}
WORK=${WORK:-build/mutation}
OUT=${OUT:-benchmarks/results/mutation}

# name | file(s) to mutate (globs, comma-separated) | tests that exercise them
# To add a module, add one line. (seqdbr/distributed/ is not listed: its tests run under
# mpiexec in subprocesses, which mutmut cannot follow; it needs in-process unit tests first.)
# Leave out
# test files that run seqdbr in a subprocess (test_user_reports.py, the trainer's resume
# tests): the subprocess imports the unmutated package and mutmut's stats run fails.
MODULES=(
  "sample|seqdbr/charlm/sample.py|tests/charlm/test_sample.py"
  "checkpoint|seqdbr/charlm/checkpoint.py|tests/charlm/test_checkpoint.py"
  "atomic|seqdbr/core/atomic.py|tests/core/test_atomic.py tests/core/test_serializers.py tests/charlm/test_checkpoint.py"
  "serializers|seqdbr/core/serializers.py|tests/core/test_serializers.py"
  "gradient_check|seqdbr/gradient_check.py|tests/core/test_gradient_check.py tests/core/test_noise.py"
  "training|seqdbr/training/*.py,seqdbr/training/extensions/*.py|tests/training/test_trainer.py tests/training/test_triggers.py tests/training/test_golden.py"
)
# Test files that do not exist are left out (so an older checkout can be measured too).

command -v "$MUTMUT" >/dev/null || { echo "mutmut not found: pip install -e '.[dev]'" >&2; exit 2; }
PY=$(dirname "$(command -v "$MUTMUT")")/python    # the interpreter mutmut is installed in
mkdir -p "$WORK" "$OUT"
OUT=$(cd "$OUT" && pwd)

toml_list() {  # words -> ["a", "b"]
    local sep='' out='['
    for w in "$@"; do out+="$sep\"$w\""; sep=', '; done
    echo "$out]"
}

run_module() {
    local name=$1 files=$2 tests=$3
    local dir="$WORK/$name"
    echo "== $name: mutating $files with $tests" >&2
    rm -rf "$dir"
    mkdir -p "$dir"
    # the working tree as git sees it (tracked and untracked-but-not-ignored files), plus the
    # compiled extension when it is built
    (git ls-files -z --cached --others --exclude-standard; \
     find seqdbr -name '*.so' -print0) | tar --null -T - -cf - 2>/dev/null | tar -xf - -C "$dir"
    IFS=',' read -r -a globs <<< "$files"
    local present=()
    for t in $tests; do [ -e "$dir/$t" ] && present+=("$t"); done
    [ ${#present[@]} -gt 0 ] || { echo "no test file of $name exists" >&2; return 1; }
    cat >> "$dir/pyproject.toml" <<EOF

[tool.mutmut]
source_paths = ["seqdbr"]
only_mutate = $(toml_list "${globs[@]}")
pytest_add_cli_args_test_selection = $(toml_list "${present[@]}")
pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]
use_git_change_detection = false
EOF
    local t0=$SECONDS
    (cd "$dir" && OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
        "$MUTMUT" run --max-children "$JOBS" > mutmut-run.log 2>&1) || {
        echo "mutmut failed for $name; see $dir/mutmut-run.log" >&2; tail -20 "$dir/mutmut-run.log" >&2
        return 1; }
    (cd "$dir" && "$MUTMUT" export-cicd-stats >/dev/null && \
        python3 - "$name" "$((SECONDS - t0))" "$files" > "$OUT/$name.json" <<'PY'
import json, sys
s = json.load(open('mutants/mutmut-cicd-stats.json'))
s = {'module': sys.argv[1], 'files': sys.argv[3], 'seconds': int(sys.argv[2]), **s}
print(json.dumps(s, indent=1))
PY
    )
    # every mutant that was not killed, with its diff (one process: `mutmut show` per mutant
    # takes seconds each)
    (cd "$dir" && "$PY" - > "$OUT/$name-survivors.txt" <<'PY'
from mutmut.__main__ import (SourceFileMutationData, get_diff_for_mutant, status_by_exit_code,
                             walk_mutatable_files)
for path in walk_mutatable_files():
    m = SourceFileMutationData(path=path)
    m.load()
    for key, code in m.exit_code_by_key.items():
        status = status_by_exit_code[code]
        if status != 'killed':
            print('# %s: %s' % (key, status))
            print(get_diff_for_mutant(key, path=path))
PY
    )
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('%-15s' % d['module'], {k: v for k, v in d.items() if k not in ('module', 'files')})" "$OUT/$name.json"
}

status=0
for entry in "${MODULES[@]}"; do
    IFS='|' read -r name files tests <<< "$entry"
    if [ $# -gt 0 ]; then
        case " $* " in *" $name "*) ;; *) continue ;; esac
    fi
    run_module "$name" "$files" "$tests" || status=1
done
exit $status
