"""A decoder model run one new token at a time against key/value caches.

`CachedModel` is the model side of fast decoding, shared by the host-loop `CachedGenerator`
and the compiled `CompiledGenerator`: `prefill_graph` encodes the prompts (the UNILM source, an
LM's prefix, T5's encoder input) into a key/value cache per attention call, and `step_graph`
runs one new token per row at its true position against the caches. Both are pure functions
of tensors, so they may be compiled alone or inside a loop.

The model's own graph runs (`keras.Model` nodes in order): attention layers receive `cache=`
and `cache_index=`, position layers the new tokens' positions, the `AttentionMask` is replaced
by the cache's validity and the final activation is skipped to get logits. Nothing of the
model is re-expressed, so any model of this package's layers decodes, and results are exactly
those of re-running the whole model on `prompt + output` at every step.

Padding may sit on either side of a prompt: positions count the real tokens only, and the next
token follows the last real one, so a padded prompt decodes exactly as it does alone.
"""
import keras
import numpy as np
from keras import ops

from bert4keras_ext import arguments, masks
from bert4keras_ext.layers import (
    AttentionMask,
    MultiHeadAttention,
    PerformerAttention,
    RelativePositionBias,
)
from bert4keras_ext.layers.embeddings import PositionEmbeddingBase
from bert4keras_ext.models.backbone import TransformerModel


class CachedModel:
    """`model` (application 'lm' or 'unilm' with an output head, or a T5 builder with
    `.encoder` and `.decoder`) prepared for decoding up to `maxlen` new tokens; `start_id` is
    fed after each prompt (T5: the decoder's first token, default 0)."""

    def __init__(self, model, maxlen, start_id=None):
        self.encoder = getattr(model, "encoder", None)
        if self.encoder is not None:
            model = model.decoder
            start_id = 0 if start_id is None else start_id
        self.maxlen = arguments.integer(maxlen, "maxlen", minimum=1)
        self.start_id = None if start_id is None else arguments.integer(start_id, "start_id",
                                                                        minimum=0)
        if not isinstance(model, TransformerModel):
            raise TypeError("Cached decoding needs a model made by `build_transformer_model` "
                            f"(a TransformerModel); received a {type(model).__name__}.")
        self.application = model.application
        if self.application not in ("lm", "unilm"):
            raise ValueError("Cached decoding needs a model built with application='lm' or "
                             f"'unilm'; this one's application is {self.application!r}.")
        if any(isinstance(layer, PerformerAttention) for layer in model.attention_layers):
            raise ValueError("Cached decoding needs softmax attention; PerformerAttention has "
                             "no key/value cache.")
        head = model.lm_head
        if head is None or len(model.outputs) != 1:
            raise ValueError("Cached decoding needs a model whose one output is the token "
                             "distribution (build it with `with_mlm`); this one has "
                             f"{'no output head' if head is None else 'other outputs'}.")
        if head.activation.activation not in (keras.activations.softmax,
                                              keras.activations.linear):
            raise ValueError("Cached decoding needs a model whose output is the token "
                             "distribution, ending in a softmax or linear activation; this "
                             f"one ends in {head.activation.activation.__name__}.")
        self.model, self.head = model, head
        # The compiled steps clamp out-of-range gathers (XLA), so prompts are checked first.
        self.vocab_size = model.transformer_config["vocab_size"]
        self.check_token("start_id", self.start_id, padding_allowed=self.encoder is not None)
        self.max_positions = model.max_positions
        # GPT-2 families and T5 take token ids alone; the others token and segment ids.
        self.id_inputs = model.parts.id_inputs
        # Per-row tensors every step needs besides the caches: T5's encoder output and its
        # validity, or the model's inputs after the ids (a Conditional LayerNorm condition).
        self.extras = 2 if self.encoder else len(model.inputs) - self.id_inputs
        self.new_segment = 1 if self.application == "unilm" else 0
        variables = _unique(model.variables + (self.encoder.variables if self.encoder else []))
        self.variables = variables
        self.prefill = compile_function(self.prefill_graph, variables)
        self.step = compile_function(self.step_graph, variables)

    def prefill_inputs(self, inputs):
        """The prompts (`inputs`: ids first, then the model's other inputs, one row per
        prompt) as `prefill_graph` takes them: checked, with `start_id` fed after each LM or
        UNILM prompt."""
        inputs = list(inputs)
        ids = [np.asarray(x, "int32") for x in inputs[:self.id_inputs]]
        self.check_prompts(ids[0])
        if self.start_id is not None and not self.encoder:
            ids = after_prompts(ids, [self.start_id, self.new_segment])
        return [*ids, *(np.asarray(x) for x in inputs[self.id_inputs:])]

    def check_token(self, name, token, padding_allowed=False):
        """Refuses a `token` (argument `name`) outside the vocabulary; 0, the padding id, is
        never generated and not attended to in an LM's prompt, so only T5's start may be 0."""
        first = 0 if padding_allowed else 1
        if token is not None and not first <= token < self.vocab_size:
            raise ValueError(
                f"`{name}` must be a token id in [{first}, {self.vocab_size}) (the model's "
                f"vocabulary{'' if first == 0 else ' without the padding id 0'}); "
                f"received {token}.")

    def check_prompts(self, token_ids):
        if token_ids.ndim != 2 or token_ids.shape[1] == 0:
            raise ValueError(f"Prompts must be token ids of shape [rows, length >= 1]; "
                             f"received shape {token_ids.shape}.")
        empty = np.flatnonzero(~token_ids.any(axis=1))
        if len(empty):
            raise ValueError(f"Prompt rows {empty.tolist()} are all padding (id 0); each "
                             f"prompt needs at least one token.")
        if token_ids.min() < 0 or token_ids.max() >= self.vocab_size:
            raise ValueError(f"Prompt token ids must be in [0, {self.vocab_size}) (the model's "
                             f"vocabulary); received ids from {token_ids.min()} to "
                             f"{token_ids.max()}.")
        if self.encoder is None and self.max_positions is not None:
            # Positions count real tokens (and the start token fed after them).
            longest = int(np.count_nonzero(token_ids, axis=1).max()) + (self.start_id is not None)
            if longest + self.maxlen > self.max_positions:
                raise ValueError(f"A prompt of length {longest} plus `maxlen` {self.maxlen} "
                                 f"new tokens exceeds the model's {self.max_positions} "
                                 f"positions (max_position_embeddings); shorten the prompt or "
                                 f"lower `maxlen`.")

    def _run_model(self, ids, extras, visible, positions, key_positions, caches, cache_index,
                   scored=None):
        """The model's graph on token `ids` and `extras` with attention over `caches` (None:
        new ones: empty self-attention caches of the prompt length plus `maxlen`, and the
        encoder's keys and values for cross-attention) whose self-attention rows hold tokens
        at `key_positions`. Returns logits [rows, length, vocab] (with `scored`, int
        [rows, count], only those positions go through the output head: [rows, count, vocab])
        and the updated caches, in the order of the attention calls."""
        rows, length = ops.shape(ids[0])
        if self.encoder:
            (context, context_visible), inputs = extras, [extras[0], *ids]
        else:
            inputs = [*ids, *extras]
        new_caches, cross_attention = [], []

        def call(operation, *args, **kwargs):
            if isinstance(operation, AttentionMask):
                return visible
            if operation is self.head.activation:
                return args[0]
            entry, entry_kwargs = self.head.entry
            if scored is not None and operation is entry and kwargs == entry_kwargs:
                # The head scores positions independently: project only those asked for.
                first = args[0]
                if isinstance(first, list):  # a Conditional LayerNorm: [hidden, condition]
                    first = [ops.take_along_axis(first[0], scored[:, :, None], axis=1),
                             *first[1:]]
                else:
                    first = ops.take_along_axis(first, scored[:, :, None], axis=1)
                args = (first, *args[1:])
            if isinstance(operation, PositionEmbeddingBase):
                return operation(*args, position_ids=positions, **kwargs)
            if isinstance(operation, RelativePositionBias):
                queries, keys = args[0]
                # Cross-attention keys are the encoder's tokens, at 0, 1, ...
                slots = key_positions if keys is queries else None
                return operation(*args, positions=positions, key_positions=slots)
            if isinstance(operation, MultiHeadAttention):
                queries, keys, _ = args[0]
                index, size = cache_index, length + self.maxlen
                cross_attention.append(keys is not queries)
                if keys is not queries:  # cross-attention: filled once, then read
                    kwargs["attention_mask"] = context_visible
                    index, size = (0, ops.shape(context)[1]) if caches is None else (None, 0)
                if caches is None:
                    shape = (rows, operation.heads, size)
                    cache = (ops.zeros((*shape, operation.key_size), operation.compute_dtype),
                             ops.zeros((*shape, operation.head_size), operation.compute_dtype))
                else:
                    cache = caches[len(new_caches)]
                output, cache = operation(*args, cache=cache, cache_index=index,
                                          positions=positions, key_positions=key_positions,
                                          **kwargs)
                new_caches.append(cache)
                return output
            return operation(*args, **kwargs)

        logits = self.model.run_graph(inputs, call)
        # Which caches hold the encoder's keys and values (read by `step_graph`).
        self.cross_caches = tuple(cross_attention)
        if isinstance(logits, (list, tuple)):
            (logits,) = logits
        return ops.cast(logits, "float32"), new_caches

    def prefill_graph(self, token_ids, *rest):
        if self.encoder:
            # The prompt is the decoder's start token; the encoder runs once, here.
            context = self.encoder(token_ids if not rest else [token_ids, *rest])
            extras = (context, ops.not_equal(token_ids, 0)[:, None, None, :])
            token_ids = ops.full((ops.shape(token_ids)[0], 1), self.start_id, "int32")
            ids, valid = [token_ids], ops.ones_like(token_ids, dtype="bool")
            visible = masks.attention_mask("lm", token_ids, pad_id=None)
        else:
            ids, extras = [token_ids, *rest[:self.id_inputs - 1]], rest[self.id_inputs - 1:]
            valid = ops.not_equal(token_ids, 0)
            visible = masks.attention_mask(self.application, *ids)
        room = [(0, 0), (0, 0), (0, 0), (0, self.maxlen)]
        rows, length = ops.shape(token_ids)
        # Real tokens take positions 0, 1, ... wherever the padding is (padding takes 0 and is
        # never attended to); step t writes slot `length + t` (see step_graph).
        counted = ops.cumsum(ops.cast(valid, "int32"), axis=1)
        positions = ops.maximum(counted - 1, 0)
        key_positions = ops.pad(positions, [(0, 0), (0, self.maxlen)])
        lengths = counted[:, -1]
        # The next token follows the last real one: the first slot whose count is the total.
        last_index = ops.argmax(ops.cast(ops.equal(counted, lengths[:, None]), "int32"), axis=1)
        logits, caches = self._run_model(ids, extras, ops.pad(visible, room), positions,
                                         key_positions, None, 0, scored=last_index[:, None])
        last = logits[:, 0]
        cache_valid = ops.pad(valid, [(0, 0), (0, self.maxlen)])
        index = ops.convert_to_tensor(length, "int32")
        return (last, cache_valid, key_positions, lengths, index, *extras,
                *(tensor for cache in caches for tensor in cache))

    def step_graph(self, tokens, rows, cache_valid, key_positions, lengths, index, *state,
                   beams_of_inputs=False):
        """One new token per row against the caches, after reordering the rows: row `r`
        continues row `rows[r]` (None: itself, as in greedy search and sampling).
        `beams_of_inputs`: every row continues a row of the same input (a compiled beam
        search), so what all rows of an input share (the prompt's keys and values, T5's
        encoder output and cross-attention caches) stays in place and only the generated
        slots are copied."""
        if rows is not None and beams_of_inputs:
            cache_valid, key_positions, lengths = (
                ops.take(tensor, rows, axis=0) for tensor in (cache_valid, key_positions, lengths))
            extras, tensors = state[:self.extras], state[self.extras:]
            width = ops.shape(cache_valid)[1] - self.maxlen  # the prompt's slots
            crosses = [cross for cross in self.cross_caches for _ in range(2)]
            state = [*extras, *(
                tensor if cross else ops.slice_update(
                    tensor, (0, 0, width, 0), ops.take(tensor[:, :, width:], rows, axis=0))
                for tensor, cross in zip(tensors, crosses))]
        elif rows is not None:
            cache_valid, key_positions, lengths, *state = [
                ops.take(tensor, rows, axis=0)
                for tensor in (cache_valid, key_positions, lengths, *state)]
        new_slot = ops.one_hot(index, ops.shape(cache_valid)[1], dtype="bool")[None]
        cache_valid = ops.logical_or(cache_valid, new_slot)
        key_positions = ops.where(new_slot, lengths[:, None], key_positions)
        ids = [tokens[:, None]]
        if self.id_inputs == 2:
            ids.append(ops.full_like(tokens, self.new_segment)[:, None])
        extras, state = state[:self.extras], state[self.extras:]
        caches = list(zip(state[::2], state[1::2]))
        logits, caches = self._run_model(
            ids, extras, cache_valid[:, None, None, :], lengths[:, None], key_positions, caches,
            index,
        )
        return (logits[:, 0], cache_valid, key_positions, lengths + 1, index + 1,
                *extras, *(tensor for cache in caches for tensor in cache))



def _unique(variables):
    seen = set()
    return [v for v in variables if not (id(v) in seen or seen.add(id(v)))]


def compile_function(function, variables):
    """`function` compiled with XLA for the backend: `tf.function(jit_compile=True)` on
    TensorFlow, `jax.jit` over the values of the model's `variables` on JAX, eager
    elsewhere."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(function, jit_compile=True, autograph=False)
        concrete = {}

        def call_tensorflow(*arguments):
            # Concrete functions skip tf.function's per-call argument matching.
            arguments = [tf.convert_to_tensor(argument) for argument in arguments]
            key = tuple((tuple(argument.shape), argument.dtype) for argument in arguments)
            if key not in concrete:
                concrete[key] = compiled.get_concrete_function(*arguments)
            return concrete[key](*arguments)

        return call_tensorflow
    if backend == "jax":
        import jax

        def stateless(values, *arguments):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return function(*arguments)

        compiled = jax.jit(stateless)
        return lambda *arguments: compiled([v.value for v in variables], *arguments)
    return function


def after_prompts(ids, values):
    """`ids` (token ids first) with one column more: `values[i]` written into `ids[i]` just
    after each row's last real token (id != 0), the columns after it shifted right."""
    token_ids = ids[0]
    width = token_ids.shape[1]
    slot = width - np.argmax(token_ids[:, ::-1] != 0, axis=1)
    columns = np.arange(width + 1)[None]
    source = np.minimum(columns - (columns > slot[:, None]), width - 1)
    return [np.where(columns == slot[:, None], value, np.take_along_axis(x, source, axis=1))
            .astype(x.dtype) for x, value in zip(ids, values)]


def pad_rows(array, rows):
    """`array` with copies of row 0 appended up to `rows` rows."""
    missing = rows - len(array)
    if missing <= 0:
        return array
    return np.concatenate([array, np.repeat(array[:1], missing, axis=0)], axis=0)

