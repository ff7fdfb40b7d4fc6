"""`build_transformer_model`: bert4keras's entry point (https://github.com/bojone/bert4keras),
dispatching by family name to the family's record (`models.registry`)."""
import inspect
import numbers
import os

# isort: off
# Each family's module registers its names when imported, in this order: the order of
# `MODELS` and of the families that error messages suggest.
from bert4keras_ext.models import bert, nezha, roformer, albert, electra, gpt2, t5  # noqa: F401
# isort: on
from bert4keras_ext.backend import one_of
from bert4keras_ext.models.checkpoints import load_checkpoint
from bert4keras_ext.models.config import KEYS, load_config
from bert4keras_ext.models.registry import FAMILIES, get_family

MODELS = tuple(FAMILIES)


def build_transformer_model(
    config=None,
    checkpoint_path=None,
    model="bert",
    application=None,
    keep_tokens=None,
    name=None,
    return_keras_model=True,
    config_path=None,
    **options,
):
    """Builds a Transformer of family `model` from a config dict or a `bert_config.json` path.

    Inputs are `[token_ids, segment_ids]` (int, `[batch, length]`, token 0 is padding; GPT-2
    families, and GPT without segment embeddings, take `token_ids` alone), plus the condition
    input when `layer_norm_cond` is a size. The attention mask is made inside the graph from
    the inputs: padding only for 'encoder', causal for 'lm', UNILM seq2seq for 'unilm'.

    Returns a `TransformerModel` (`models.backbone`): a functional Keras model that carries
    its family, application and config and hands out its parts (token embedding, attention
    layers, `backbone`, `lm_head`, T5's `encoder` and `decoder`).

    Outputs follow bert4keras: the sequence output alone; with `with_pool` the pooled `[CLS]`
    vector; with `with_mlm` the MLM head's output; with both, `[pooled, mlm]`. GPT families
    output the next-token distribution, ELECTRA its replaced-token head with
    `with_discriminator`. T5 models take `[encoder token ids, decoder token ids]` and output
    the decoder's next-token distribution; '_encoder' / '_decoder' models are the halves
    (`models.t5`).

    Example:
    ```python
    config = dict(vocab_size=100, hidden_size=64, num_hidden_layers=2,
                  num_attention_heads=4, intermediate_size=128)
    model = build_transformer_model(config, application="unilm", with_mlm="linear")
    logits = model([token_ids, segment_ids])  # (batch, length, 100)
    ```

    Pretrained weights: `checkpoint_path` is the family's original TF checkpoint prefix
    (`bert_model.ckpt`, `albert_model.ckpt`, ...), a Hugging Face `.safetensors` file or our own
    `.weights.h5`; weights are mapped by name (`models.checkpoints`). `keep_tokens` (from
    `tokenizers.load_vocab(..., simplified=True)`) keeps only those vocabulary rows.

    Args:
        config: `TransformerConfig`, dict or JSON path with vocab_size, hidden_size,
            num_hidden_layers, num_attention_heads, intermediate_size and optionally
            hidden_act, max_position_embeddings, type_vocab_size, hidden_dropout_prob,
            attention_probs_dropout_prob, embedding_size, layer_norm_eps, initializer_range
            (`models.config`). Every family reads these BERT-style keys; GPT families also
            read Hugging Face GPT-2's config.json, T5 families Hugging Face T5's.
        checkpoint_path: pretrained weights to load, or None.
        model: one of `MODELS`: 'bert', 'roberta' (BERT's graph), 'albert' (one shared block,
            factorized embeddings), 'albert_unshared', 'nezha' (functional relative positions),
            'roformer' (rotary positions), 'roformer_v2' (rotary, no biases, parameter-free
            RMSNorm), 'electra' (discriminator), 'gpt' (BERT's blocks as a causal LM), 'gpt2',
            'gpt2_ml' (causal LMs), 't5' / 't5.1.0', 't5.1.1', 'mt5.1.1' (encoder-decoder)
            and their '_encoder' / '_decoder' halves.
        application: 'encoder', 'lm' or 'unilm' (default: 'encoder'; for GPT families 'lm',
            the only one, except that 'gpt' also takes 'unilm').
        keep_tokens: vocabulary ids to keep from the checkpoint (sets `vocab_size`).
        name: the model's name (default: `model`).
        return_keras_model: False returns the builder instead, with the model as `.model`
            and its `.initializer` (and, for T5, `.encoder` and `.decoder`), as bert4keras
            does.
        config_path: bert4keras's name for `config`.
        **options: the family builder's arguments (`with_mlm`: False, True (probabilities) or
            'linear' (logits), the MLM head tied to the token embeddings; by default True for
            'lm' and 'unilm', as in bert4keras, else False; `with_pool`;
            `normalization`: 'softmax', 'softmax_plus', 'taylor_softmax' or 'performer';
            `layer_norm_cond`, `layer_norm_cond_hidden_size`, `layer_norm_cond_hidden_act`,
            `additional_input_layers` for Conditional LayerNorm; `sequence_length` for static
            shapes; `with_discriminator` for ELECTRA; `final_activation` for GPT families;
            `with_lm`, `cross_position_bias`, `scale_logits` for T5 decoders),
            or config entries to replace, e.g. `hidden_dropout_prob=0.0`.
    """
    config = one_of(config, config_path, "config", "config_path")
    family = get_family(model)
    config = load_config(config, formats=family.config_formats)
    # Config entries given as arguments, except those the builder takes itself (T5's
    # `cross_position_bias`, which then overrides the config's).
    arguments = _arguments_of(family.builder)
    overrides = {key: options.pop(key) for key in list(options)
                 if key in KEYS and key not in arguments}
    if keep_tokens is not None:
        keep_tokens = list(keep_tokens)
        if not keep_tokens or not all(isinstance(i, numbers.Integral) and i >= 0
                                      for i in keep_tokens):
            raise ValueError(f"`keep_tokens` must be a non-empty list of vocabulary ids >= 0; "
                             f"received {keep_tokens!r:.200}.")
        overrides["vocab_size"] = len(keep_tokens)
    config = config.with_values(**overrides)
    unknown = sorted(set(options) - arguments)
    if unknown:
        raise TypeError(
            f"build_transformer_model(model={model!r}) got unknown arguments {unknown}; it "
            f"accepts {sorted(arguments - {'config', 'self', 'options'})} and the "
            f"config entries {sorted(set(KEYS) - arguments)}."
        )
    builder = family.builder(config, application=application or family.default_application,
                             name=name or model, **options)
    builder.family = model
    builder.build_arguments = options if _is_plain_data(options) else None
    builder.model = builder.build()
    if checkpoint_path is not None:
        load_pretrained(builder.model, checkpoint_path, keep_tokens, model)
    return builder.model if return_keras_model else builder


def _is_plain_data(value):
    """Whether `value` is made of JSON's kinds of values only (so a config can hold it)."""
    if isinstance(value, dict):
        return all(isinstance(key, str) and _is_plain_data(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return all(_is_plain_data(item) for item in value)
    return value is None or isinstance(value, (bool, int, float, str))


def _arguments_of(builder):
    """Keyword arguments a family's builder takes (its own and the shared builder's; for T5,
    its encoder's and decoder's too)."""
    return {name for part in (builder, *getattr(builder, "parts", ())) for cls in part.__mro__
            if "__init__" in vars(cls) for name in inspect.signature(cls.__init__).parameters}


def load_pretrained(model, checkpoint_path, keep_tokens=None, family="bert"):
    """Loads weights by format: our `.h5` / `.weights.h5`, else a `family` checkpoint by name."""
    path = str(checkpoint_path)
    if path.endswith(".h5"):
        if not os.path.exists(path):
            raise FileNotFoundError(f"Checkpoint file not found: {path}")
        model.load_weights(path)
        return None
    return load_checkpoint(model, path, keep_tokens, family)
