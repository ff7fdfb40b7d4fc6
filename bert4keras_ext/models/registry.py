"""One record per model family: what `build_transformer_model(model=...)`, checkpoint loading,
export, conversion and pretraining need to know about a family, found by its name.

Each family's module registers its names (`register_family`) when it is imported: `bert.py`
'bert' and 'roberta', `t5.py` the T5 versions and their halves, ... `bert4keras_ext.models`
imports them all, so the registry is full once any part of that package is imported. Adding
a family is one module with its builder, its weight-name map and a `register_family` call.
"""
import dataclasses
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Family:
    """A family of `build_transformer_model`.

    Attributes:
        name: the `model=` name.
        builder: the builder class (a `Transformer`, or `T5`'s pair of them).
        weight_names: `num_hidden_layers -> [WeightName]`, which checkpoint variable fills
            which weight (`models.checkpoints.name_map`).
        hugging_face_prefixes: model prefixes Hugging Face files may put before the names of
            `weight_names` ('bert.', ...).
        config_formats: the config formats the family reads (`models.config.FORMATS`).
        half_of: for an encoder or decoder alone, the name of the whole model, which reads
            the same checkpoint names.
        unused_prefixes: checkpoint variables (by name prefix, after Hugging Face's model
            prefix) the family leaves unused without a warning: another half's.
    """

    name: str
    builder: type
    weight_names: Callable
    hugging_face_prefixes: tuple = ()
    config_formats: tuple = ("bert",)
    half_of: str = None
    unused_prefixes: tuple = ()

    @property
    def default_application(self):
        """The `application` the family builds when none is given."""
        return self.builder.applications[0]


FAMILIES = {}


def register_family(name, builder, weight_names, **details):
    """Adds the family `name` (see `Family` for `details`); a name is registered once."""
    if name in FAMILIES:
        raise ValueError(f"`name` must be a family not yet registered; received {name!r}, "
                         f"registered as {FAMILIES[name]}.")
    FAMILIES[name] = Family(name, builder, weight_names, **details)
    return FAMILIES[name]


def get_family(name, argument="model"):
    """The family called `name`; the error names `argument`, the caller's name for it."""
    if name not in FAMILIES:
        raise ValueError(f"`{argument}` must be one of {tuple(FAMILIES)}; received {name!r}.")
    return FAMILIES[name]
