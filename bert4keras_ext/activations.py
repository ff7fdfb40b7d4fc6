"""GELU and its elementary approximations, selectable by name.

Source: "Gaussian Error Linear Units (GELUs)" (Hendrycks and Gimpel, 2016,
https://arxiv.org/abs/1606.08415) and the post "GELU的两个初等函数近似是怎么来的"
(https://kexue.fm/archives/7309).

`gelu_erf` is the exact `x * Phi(x)` of the original BERT; `gelu_tanh` is the cubic-tanh form
(`0.044715`) used by GPT-2 and keras-hub's BERT; `gelu_sigmoid` is `x * sigmoid(1.702 x)`.
`get(name)` resolves these names (and 'gelu', which means `gelu_erf`) before Keras's own.
"""
import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="bert4keras_ext")
def gelu_erf(x):
    return 0.5 * x * (1.0 + ops.erf(x / math.sqrt(2.0)))


@keras.saving.register_keras_serializable(package="bert4keras_ext")
def gelu_tanh(x):
    return 0.5 * x * (1.0 + ops.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


@keras.saving.register_keras_serializable(package="bert4keras_ext")
def gelu_sigmoid(x):
    return x * ops.sigmoid(1.702 * x)


# 'gelu_new' and 'gelu_pytorch_tanh' are Hugging Face's names of the tanh form.
NAMED = {"gelu": gelu_erf, "gelu_erf": gelu_erf, "gelu_tanh": gelu_tanh,
         "gelu_new": gelu_tanh, "gelu_pytorch_tanh": gelu_tanh, "gelu_sigmoid": gelu_sigmoid}


def set_gelu(version):
    """What 'gelu' means from now on for models built in this process: 'erf' (exact, the
    default) or 'tanh', as bert4keras's `set_gelu`. Explicit names ('gelu_erf',
    'gelu_tanh') are unaffected."""
    forms = {"erf": gelu_erf, "tanh": gelu_tanh}
    if version not in forms:
        raise ValueError(f"`version` must be 'erf' or 'tanh'; received {version!r}.")
    NAMED["gelu"] = forms[version]


def get(identifier):
    """An activation function from a name of ours, a Keras name, a config or a callable."""
    if isinstance(identifier, str) and identifier in NAMED:
        return NAMED[identifier]
    return keras.activations.get(identifier)


def name_of(activation):
    """The name `get` resolves to `activation`: 'gelu' for what 'gelu' means now (the exact
    form unless `set_gelu('tanh')`), as in BERT configs."""
    for name, function in NAMED.items():
        if function is activation:
            return name
    return keras.activations.serialize(activation)
