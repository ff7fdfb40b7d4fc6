"""T5.1.0 / T5.1.1 / mT5.1.1 against bert4keras 0.11.5 and transformers, and its parts.

Fixtures (tests/fixtures/families/{t5.1.0,t5.1.1,mt5.1.1,hf_t5}, made by
make_family_reference.py): random weights in the released variable names (bert4keras) or as
safetensors (transformers), a padded batch of encoder and decoder ids, and the reference
outputs.
"""
import json

import keras
import numpy as np
import pytest

from bert4keras_ext.decoding import AutoRegressiveDecoder, CachedGenerator
from bert4keras_ext.layers import FeedForward, MultiHeadAttention, RelativePositionBias
from bert4keras_ext.layers.relative_position_bias import relative_position_buckets
from bert4keras_ext.models import build_transformer_model
from bert4keras_ext.models.checkpoints import load_checkpoint, save_checkpoint

from tests.models.test_families import FIXTURES, log_softmax

VERSIONS = ("t5.1.0", "t5.1.1", "mt5.1.1")


def build(version, directory=None, checkpoint=None, **options):
    directory = directory or FIXTURES / version
    return build_transformer_model(directory / "bert_config.json", checkpoint, model=version,
                                   return_keras_model=False, **options)


def assert_close(ours, expected, keep, log=False):
    ours, expected = np.asarray(ours, "float64")[keep], np.asarray(expected, "float64")[keep]
    if log:
        ours, expected = np.log(ours), np.log(expected)
    np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=0)


def decoder_rows(decoder_ids):
    """Decoder positions holding a token: the start id 0 and the nonzero ids after it."""
    keep = decoder_ids != 0
    keep[:, 0] = True
    return keep


@pytest.mark.parametrize("version", VERSIONS)
def test_original_checkpoint_matches_bert4keras(version):
    t5 = build(version)
    report = load_checkpoint(t5.model, str(FIXTURES / version / "model.ckpt"), family=version)
    assert report.missing == [] and report.unused == []
    reference = np.load(FIXTURES / version / "reference.npz")
    token_ids, decoder_ids = reference["token_ids"], reference["decoder_ids"]
    # Called directly: `predict` would trace each model, slower than running these tiny ones.
    assert_close(t5.encoder(token_ids), reference["encoded"], token_ids != 0)
    rows = decoder_rows(decoder_ids)
    decoded = t5.decoder([reference["encoded"], decoder_ids])
    assert_close(decoded, reference["decoded"], rows, log=True)
    output = t5.model([token_ids, decoder_ids])
    assert_close(output, reference["output"], rows, log=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_original_checkpoint_round_trip_is_exact(version, tmp_path):
    t5 = build(version, checkpoint=str(FIXTURES / version / "model.ckpt"))
    save_checkpoint(t5.model, str(tmp_path / "model.ckpt"), version)
    reloaded = build(version, tmp_path, str(tmp_path / "model.ckpt"))
    theirs = {w.path: keras.ops.convert_to_numpy(w) for w in reloaded.model.weights}
    assert sorted(theirs) == sorted(w.path for w in t5.model.weights)
    for ours in t5.model.weights:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours), theirs[ours.path])
    written = json.loads((tmp_path / "bert_config.json").read_text())
    given = json.loads((FIXTURES / version / "bert_config.json").read_text())
    for key in ("attention_head_size", "hidden_act", "intermediate_size"):
        assert written.get(key) == given.get(key), key


@pytest.mark.backend_neutral
def test_safetensors_match_transformers():
    directory = FIXTURES / "hf_t5"
    t5 = build_transformer_model(directory / "config.json", directory / "model.safetensors",
                                 model="t5.1.1", with_lm="linear", return_keras_model=False)
    assert t5.decoder_builder.scale_logits is False
    assert t5.decoder_builder.cross_position_bias is False
    reference = np.load(directory / "reference.npz")
    token_ids, decoder_ids = reference["token_ids"], reference["decoder_ids"]
    assert_close(t5.encoder.predict(token_ids, verbose=0), reference["encoded"], token_ids != 0)
    logits = t5.model.predict([token_ids, decoder_ids], verbose=0)
    assert_close(log_softmax(logits.astype("float64")),
                 log_softmax(reference["logits"].astype("float64")), decoder_rows(decoder_ids))


def test_hugging_face_t5_written_and_rebuilt_computes_the_same(tmp_path):
    """Reliability probe 2, C06: a T5 with Hugging Face's conventions (no cross-attention
    bias, no output scaling) and a decoder of its own depth, written by `save_checkpoint` and
    rebuilt from the written files, computes the same (the rebuilt model used bert4keras's
    conventions: differences up to 0.18)."""
    directory = FIXTURES / "hf_t5"
    config = dict(json.loads((directory / "config.json").read_text()), num_decoder_layers=1)
    with pytest.warns(UserWarning, match="left unused"):  # the second decoder block
        t5 = build_transformer_model(config, directory / "model.safetensors", model="t5.1.1")
    save_checkpoint(t5, str(tmp_path / "model.ckpt"), "t5.1.1")
    written = json.loads((tmp_path / "bert_config.json").read_text())
    assert {key: written[key] for key in ("cross_position_bias", "scale_decoder_outputs",
                                          "num_decoder_layers")} == {
        "cross_position_bias": False, "scale_decoder_outputs": False, "num_decoder_layers": 1}
    rebuilt = build_transformer_model(tmp_path / "bert_config.json", str(tmp_path / "model.ckpt"),
                                      model="t5.1.1")
    reference = np.load(directory / "reference.npz")
    inputs = [reference["token_ids"], reference["decoder_ids"]]
    np.testing.assert_array_equal(np.asarray(rebuilt(inputs)), np.asarray(t5(inputs)))


def test_checkpoint_of_another_variant_names_the_variant():
    """Reliability probe 2, C05: mT5.1.1's original checkpoint (`rms_norm` names) loaded as
    't5.1.1' left every norm at its initial value with warnings; now an error names the
    missing norms and the variant whose names the checkpoint has."""
    with pytest.raises(ValueError, match=r"(?s)holds no model='t5.1.1' weights for \["
                                         r"'Decoder-Transformer-\*-FeedForward-Norm/gamma'.*"
                                         r"in any block.*rms_norm/scale.*fit model='mt5.1.1' "
                                         r"\("):
        build(version="t5.1.1", directory=FIXTURES / "mt5.1.1",
              checkpoint=str(FIXTURES / "mt5.1.1" / "model.ckpt"))


# bert4keras's 't5' is T5.1.0: its halves are read from the 't5.1.0' fixture.
@pytest.mark.parametrize("version,fixture", [("t5.1.1", "t5.1.1"), ("t5", "t5.1.0")])
def test_halves_load_from_the_whole_checkpoint_without_warnings(version, fixture, recwarn):
    checkpoint = str(FIXTURES / fixture / "model.ckpt")
    config = FIXTURES / fixture / "bert_config.json"
    reference = np.load(FIXTURES / fixture / "reference.npz")
    encoder = build_transformer_model(config, checkpoint, model=f"{version}_encoder")
    decoder = build_transformer_model(config, checkpoint, model=f"{version}_decoder")
    assert not [w for w in recwarn if "left unused" in str(w.message)]
    token_ids, decoder_ids = reference["token_ids"], reference["decoder_ids"]
    assert_close(encoder(token_ids), reference["encoded"], token_ids != 0)
    decoded = decoder([reference["encoded"], decoder_ids])
    assert_close(decoded, reference["decoded"], decoder_rows(decoder_ids), log=True)


def test_keep_tokens_selects_embedding_rows_and_head_columns():
    checkpoint = str(FIXTURES / "t5.1.1" / "model.ckpt")
    whole = build("t5.1.1", checkpoint=checkpoint)
    keep = [0, 1, 7, 42]
    small = build("t5.1.1", checkpoint=checkpoint, keep_tokens=keep)
    for name, axis in (("Embedding-Token", 0), ("Decoder-Output-LM", 1)):
        full = keras.ops.convert_to_numpy(whole.model.get_layer(name).weights[0])
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(
            small.model.get_layer(name).weights[0]), np.take(full, keep, axis=axis))


def test_converter_writes_the_original_format(tmp_path):
    from bert4keras_ext.models.checkpoints.convert import convert

    directory = FIXTURES / "hf_t5"
    assert convert(directory / "model.safetensors", str(tmp_path / "model.ckpt"), "t5.1.1")
    direct = build_transformer_model(directory / "config.json", directory / "model.safetensors",
                                     model="t5.1.1")
    converted = build_transformer_model(directory / "config.json", str(tmp_path / "model.ckpt"),
                                        model="t5.1.1")
    for ours, theirs in zip(direct.weights, converted.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours),
                                      keras.ops.convert_to_numpy(theirs))


def test_arguments_are_checked():
    config = FIXTURES / "t5.1.1" / "bert_config.json"
    with pytest.raises(ValueError, match="`application` must be 'encoder' for T5"):
        build_transformer_model(config, model="t5.1.1", application="unilm")
    with pytest.raises(ValueError, match="T5Encoder does not take `with_mlm`"):
        build_transformer_model(config, model="mt5.1.1_encoder", with_mlm=True)
    with pytest.raises(TypeError, match=r"unknown arguments \['with_discriminator'\]"):
        build_transformer_model(config, model="t5.1.1", with_discriminator=True)


@pytest.mark.parametrize("source", [
    "t5.1.1", pytest.param("hf_t5", marks=pytest.mark.backend_neutral)])
def test_cached_generation_equals_uncached(source):
    """Beam search with the cache (cross-attention cached once) gives the tokens of running
    the whole model on the full output at every step, on a batch of a right-padded and a
    left-padded prompt, each as it decodes alone (reliability probe 2, D04, D05)."""
    directory = FIXTURES / source
    config, checkpoint = ((directory / "bert_config.json", str(directory / "model.ckpt"))
                          if source == "t5.1.1" else
                          (directory / "config.json", str(directory / "model.safetensors")))
    t5 = build_transformer_model(config, checkpoint, model="t5.1.1", return_keras_model=False)

    class Uncached(AutoRegressiveDecoder):
        @AutoRegressiveDecoder.wraps(default_rtype="probas")
        def predict(self, inputs, output_ids, states):
            probas = np.array(t5.model.predict([inputs[0], output_ids], verbose=0)[:, -1])
            probas[:, 0] = 0.0  # the generator never emits the padding id
            return probas

    prompts = [[5, 6, 7, 8, 9], [11, 3, 4]]
    token_ids = np.array([prompts[0] + [0], [0, 0, 0] + prompts[1]])
    # Reliability probe 2, D10: T5's padding and start id 0 is never generated, so it cannot
    # end an output (every output would run to `maxlen`).
    with pytest.raises(ValueError, match=r"`end_id` must be a token id in \[1, \d+\) .* "
                                         r"received 0"):
        CachedGenerator(t5, end_id=0, maxlen=6)
    cached = CachedGenerator(t5, end_id=1, maxlen=6).batch_beam_search([token_ids], topk=2)
    uncached = [Uncached(start_id=0, end_id=1, maxlen=6).beam_search([np.array(prompt)], topk=2)
                for prompt in prompts]
    assert [list(ids) for ids in cached] == [list(ids) for ids in uncached]


@pytest.mark.backend_neutral
def test_buckets_follow_the_closed_form():
    """T5's buckets: exact below half the (per-direction) buckets, then logarithmic to
    `max_distance`; bidirectional puts keys after the query in the upper half."""
    queries = np.array([[40]])
    keys = np.array([[40, 35, 32, 24, 0, 60, 300]])  # distances 0, 5, 8, 16, 40, -20, -260
    both = relative_position_buckets(queries, keys, 32, 128, bidirectional=True)
    # exact = 8: 8 + int(log(n / 8) / log(16) * 8); keys after: + 16.
    expected_both = [0, 5, 8, 8 + 2, 8 + int(np.log(5) / np.log(16) * 8), 16 + 10, 16 + 15]
    np.testing.assert_array_equal(np.asarray(both)[0, 0], expected_both)
    one = relative_position_buckets(queries, keys, 32, 128, bidirectional=False)
    # exact = 16: 16 + int(log(n / 16) / log(8) * 16); keys after the query: bucket 0.
    expected_one = [0, 5, 8, 16, 16 + int(np.log(2.5) / np.log(8) * 16), 0, 0]
    np.testing.assert_array_equal(np.asarray(one)[0, 0], expected_one)


@pytest.mark.backend_neutral
def test_relative_position_bias_layer_round_trips(tmp_path):
    x = keras.Input((None, 8))
    layer = RelativePositionBias(heads=2, num_buckets=8, max_distance=16, bidirectional=False,
                                 embeddings_initializer="random_normal", name="bias")
    model = keras.Model(x, layer([x, x]))
    values = np.zeros((1, 5, 8), "float32")
    bias = np.asarray(model(values))
    table = keras.ops.convert_to_numpy(layer.embeddings)
    buckets = np.asarray(relative_position_buckets(np.arange(5)[None], np.arange(5)[None], 8, 16,
                                                   bidirectional=False))
    np.testing.assert_allclose(bias, table[buckets].transpose(0, 3, 1, 2), rtol=1e-6)
    model.save(tmp_path / "bias.keras")
    reloaded = keras.saving.load_model(tmp_path / "bias.keras")
    np.testing.assert_array_equal(np.asarray(reloaded(values)), bias)
    with pytest.raises(ValueError, match="`num_buckets` must be >= 4"):
        RelativePositionBias(heads=2, num_buckets=2)


@pytest.mark.backend_neutral
def test_attention_bias_and_complete_cache():
    """`attention_bias` adds to the logits (fused and explicit paths agree); a cache without
    an index is used as the keys and values, as cross-attention over an encoder."""
    rng = np.random.default_rng(0)
    q = rng.normal(size=(2, 3, 8)).astype("float32")
    kv = rng.normal(size=(2, 5, 8)).astype("float32")
    bias = rng.normal(size=(1, 2, 3, 5)).astype("float32")
    layer = MultiHeadAttention(heads=2, head_size=4, attention_scale=False)
    fused = np.asarray(layer([q, kv, kv], attention_bias=bias))
    explicit = MultiHeadAttention.from_config({**layer.get_config(),
                                               "return_attention_scores": True})
    explicit([q, kv, kv])
    explicit.set_weights(layer.get_weights())
    explicit_output, _ = explicit([q, kv, kv], attention_bias=bias)
    qw = (q @ keras.ops.convert_to_numpy(layer.q_dense.kernel)).reshape(2, 3, 2, 4)
    kw = (kv @ keras.ops.convert_to_numpy(layer.k_dense.kernel)).reshape(2, 5, 2, 4)
    vw = (kv @ keras.ops.convert_to_numpy(layer.v_dense.kernel)).reshape(2, 5, 2, 4)
    logits = np.einsum("bqhd,bkhd->bhqk", qw, kw) + bias
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    heads = np.einsum("bhqk,bkhd->bqhd", weights, vw).reshape(2, 3, 8)
    expected = (heads @ keras.ops.convert_to_numpy(layer.o_dense.kernel)
                + keras.ops.convert_to_numpy(layer.o_dense.bias))
    np.testing.assert_allclose(fused, expected, atol=1e-5)
    np.testing.assert_allclose(np.asarray(explicit_output), expected, atol=1e-5)
    cache = (kw.transpose(0, 2, 1, 3), vw.transpose(0, 2, 1, 3))  # heads first
    output, returned = layer([q, q, q], attention_bias=bias, cache=cache)
    np.testing.assert_allclose(np.asarray(output), expected, atol=1e-5)
    for returned_part, cached_part in zip(returned, cache):
        np.testing.assert_array_equal(np.asarray(returned_part), cached_part)


@pytest.mark.backend_neutral
def test_gated_feed_forward():
    x = np.random.default_rng(1).normal(size=(2, 3, 8)).astype("float32")
    layer = FeedForward(units=6, activation=["gelu", "linear"], use_bias=False)
    y = np.asarray(layer(x))
    w0, w1, wo = (keras.ops.convert_to_numpy(d.kernel) for d in (
        layer.intermediate_denses[0], layer.intermediate_denses[1], layer.output_dense))
    gelu = keras.ops.convert_to_numpy(keras.activations.gelu(x @ w0, approximate=False))
    np.testing.assert_allclose(y, (gelu * (x @ w1)) @ wo, atol=1e-5)
    clone = FeedForward.from_config(layer.get_config())
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(clone(x)), y, atol=1e-6)
    assert [w.path.split("/", 1)[1] for w in layer.weights] == [
        "intermediate_dense/kernel", "intermediate_dense_1/kernel", "output_dense/kernel"]
