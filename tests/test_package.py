"""Package-level behaviour: the error without TensorFlow, the public modules."""
import subprocess
import sys


def test_import_without_tensorflow_names_the_extras():
    code = "import sys; sys.modules['tensorflow'] = None; import bert4keras_ext"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"KERAS_BACKEND": "tensorflow", "PATH": ""})
    assert result.returncode != 0
    assert "bert4keras_ext[cpu]" in result.stderr
    assert "bert4keras_ext[gpu]" in result.stderr and "bert4keras_ext[tpu]" in result.stderr
