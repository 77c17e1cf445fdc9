#!/usr/bin/env bash
# Mutation testing of funcdiff/processes, funcdiff/mollifiers, funcdiff/domains (io.py excluded) and funcdiff/points.py
# with mutmut 3 (pip install "mutmut>=3,<4"), run against the tests of those packages.
#
# Usage: benchmarks/mutation.sh [WORK_DIR]   (default: a fresh temporary directory; the checkout is never written)
#
# The run happens in a copy of the working tree, so mutmut's config (setup.cfg), its mutants/ folder and its cache
# never touch the checkout. mutmut 3 skips decorated functions, so in the copy only, the decorators of the mutated
# modules (@jaxtyped, @register, @property, @staticmethod) become assignments after each function
# (`f = jaxtyped(typechecker=beartype)(f)`), which behaves the same and lets mutmut mutate the body. Tests run as in CI
# (hypothesis profile "ci": derandomized) on one thread per worker. Prints the counts and the score (killed /
# (mutants - skipped)), then the surviving mutants; `cd WORK_DIR && mutmut show NAME` shows one.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d /tmp/funcdiff-mutation.XXXXXX)}"
mkdir -p "$work"
cd "$repo"
git ls-files -co --exclude-standard -- funcdiff tests pyproject.toml | grep -v '^tests/data/' | tar -cf - -T - | tar -xf - -C "$work"
cd "$work"
# mutmut runs pytest several times in one process, which the jaxtyping import hook refuses ("already imported"):
# the copy runs without it, type-checked by the explicit decorators only.
sed -i 's/ --jaxtyping-packages=funcdiff,beartype.beartype//' pyproject.toml
grep -q jaxtyping-packages pyproject.toml && { echo "could not remove the jaxtyping hook from the copy's pyproject.toml"; exit 1; }

python - <<'EOF'
"""Move function decorators of the mutated modules into assignments after the function, so mutmut mutates them."""
import ast
import pathlib

files = [*pathlib.Path("funcdiff/processes").glob("*.py"), *pathlib.Path("funcdiff/mollifiers").glob("*.py"),
         *pathlib.Path("funcdiff/domains").glob("*.py"), pathlib.Path("funcdiff/points.py")]
for path in files:
    source = path.read_text()
    lines = source.splitlines()
    edits = []  # (line index, lines to delete, lines to insert), applied bottom-up
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and node.decorator_list and not (
            len(node.decorator_list) == 1 and ast.unparse(node.decorator_list[0]) in ("staticmethod", "classmethod")
        ):
            indent = lines[node.lineno - 1][: len(lines[node.lineno - 1]) - len(lines[node.lineno - 1].lstrip())]
            wrapped = node.name
            for decorator in reversed(node.decorator_list):
                wrapped = f"({ast.unparse(decorator)})({wrapped})"
            edits.append((node.end_lineno, 0, [f"{indent}{node.name} = {wrapped}"]))
            for decorator in node.decorator_list:
                edits.append((decorator.lineno - 1, decorator.end_lineno - decorator.lineno + 1, []))
    for index, delete, insert in sorted(edits, key=lambda e: e[0], reverse=True):
        lines[index:index + delete] = insert
    path.write_text("\n".join(lines) + "\n")
EOF

cat > setup.cfg <<'EOF'
[mutmut]
source_paths = funcdiff
only_mutate =
    funcdiff/processes/*
    funcdiff/mollifiers/*
    funcdiff/domains/*
    funcdiff/points.py
do_not_mutate =
    funcdiff/domains/io.py
pytest_add_cli_args_test_selection =
    tests/processes
    tests/mollifiers
    tests/domains
pytest_add_cli_args =
    -p
    no:cacheprovider
    -q
EOF

export OMP_NUM_THREADS=1 CI=1 FUZZ_EXAMPLES=30
start=$(date +%s)
mutmut run --max-children 2 > mutmut-run.log 2>&1 || { tail -40 mutmut-run.log; exit 1; }
mutmut results --all true > mutmut-results.txt
python - "$work" "$(( $(date +%s) - start ))" <<'EOF'
import collections
import sys

rows = [line.strip().rsplit(": ", 1) for line in open("mutmut-results.txt") if ": " in line]
counts = collections.Counter(status for _, status in rows)
total = len(rows)
skipped = counts["skipped"] + counts["no tests"]
print(f"work dir {sys.argv[1]}, {sys.argv[2]} s")
print(f"mutants {total}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
print(f"score {counts['killed']} / {total - skipped} = {counts['killed'] / max(total - skipped, 1):.1%}")
for name, status in rows:
    if status != "killed":
        print(f"  {status}: {name}")
EOF
