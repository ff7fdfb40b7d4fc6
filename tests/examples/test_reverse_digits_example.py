"""The reverse-digits UNILM example runs end to end."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "examples" / "basic_unilm_reverse_digits.py"


@pytest.mark.slow
def test_reverse_digits_example_runs():
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path)
    result = subprocess.run([sys.executable, str(SCRIPT), "--epochs", "1", "--train-size", "256"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "exact reversals on 50 new strings (greedy):" in result.stdout
