"""Every example is one file a user can copy: no `sys.path` edits, and `--help` works when the
script is run by path from an unrelated directory (the package installed, nothing else)."""
import json
import subprocess
import sys
from pathlib import Path

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").rglob("*.py"))

# Runs each script as `__main__` with `--help` in one interpreter (one TensorFlow start) and
# prints, per script, the exit code and whether argparse's usage line came out.
RUN_ALL = """
import contextlib, io, json, runpy, sys
results = {}
for path in sys.argv[1:]:
    sys.argv, out = [path, "--help"], io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            runpy.run_path(path, run_name="__main__")
            code = "returned without exiting"
        except SystemExit as stop:
            code = stop.code
    results[path] = [code, out.getvalue().startswith("usage:")]
print(json.dumps(results))
"""


def test_examples_do_not_edit_sys_path():
    assert EXAMPLES
    assert [str(path) for path in EXAMPLES if "sys.path" in path.read_text(encoding="utf-8")] == []


def test_every_example_answers_help_from_another_directory(tmp_path):
    result = subprocess.run([sys.executable, "-c", RUN_ALL, *map(str, EXAMPLES)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads(result.stdout.strip().splitlines()[-1])
    assert {path: outcome for path, outcome in results.items() if outcome != [0, True]} == {}
    assert len(results) == len(EXAMPLES)
