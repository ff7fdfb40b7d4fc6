"""Performer attention: softmax attention approximated in linear time (FAVOR+).

From "Rethinking Attention with Performers" (Choromanski et al., 2020,
https://arxiv.org/abs/2009.14794) and the post "Performer：用随机投影将Attention的复杂度线性化"
(https://kexue.fm/archives/7921). The features and the linear forms are in
`bert4keras_ext.performer`.
"""
import keras
from keras import ops

from bert4keras_ext import performer
from bert4keras_ext.backend import check_positive_int
from bert4keras_ext.layers.attention import MultiHeadAttention, swap_length_and_heads


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class PerformerAttention(MultiHeadAttention):
    """`MultiHeadAttention` whose softmax is replaced by `num_random_features` positive
    orthogonal random features, in O(length) time and memory.

    The features are a non-trainable weight (saved with the model, so a reloaded layer attends
    with the same ones); `redraw_features()` draws new ones. Key padding (the Keras mask of `v`)
    and, with `causal=True`, causal attention are supported; an `attention_mask` (such as
    UNILM's) cannot be linearized and raises, and there is no attention dropout or key/value
    cache. `return_attention_scores` gives the explicit O(n^2) probabilities of the same
    features.

    Example:
    ```python
    x = keras.random.normal((2, 1000, 64))
    y = PerformerAttention(heads=4, head_size=16, causal=True)([x, x, x])
    ```

    Args:
        num_random_features: the number of random features m (256).
        causal: attend to the current and earlier positions only.
        feature_seed: seed of the random features (None: fresh randomness).
        **kwargs: the arguments of `MultiHeadAttention` (not `normalization`).
    """

    def __init__(self, heads, head_size, num_random_features=256, causal=False,
                 feature_seed=None, **kwargs):
        kwargs.pop("normalization", None)  # present in configs; always the softmax it approximates
        super().__init__(heads, head_size, **kwargs)
        if self.position_scheme == "functional_relative":
            raise ValueError("PerformerAttention cannot add relative position terms to "
                             "logits it never forms; use position_scheme None or 'rotary'.")
        num_random_features = check_positive_int(num_random_features, "num_random_features")
        self.num_random_features = num_random_features
        self.causal = causal
        self.feature_seed = feature_seed

    def build(self, input_shape):
        super().build(input_shape)
        self.random_features = self.add_weight(
            shape=(self.num_random_features, self.key_size), trainable=False,
            name="random_features",
            initializer=keras.initializers.Constant(performer.gaussian_features(
                self.num_random_features, self.key_size, self.feature_seed)),
        )

    def redraw_features(self, seed=None):
        """New random features (e.g. every few hundred training steps)."""
        self.random_features.assign(performer.gaussian_features(
            self.num_random_features, self.key_size, seed))

    def call(self, inputs, attention_mask=None, cache=None, attention_bias=None, mask=None,
             training=None, **kwargs):
        if attention_mask is not None or attention_bias is not None:
            raise ValueError(
                "PerformerAttention supports key padding (the Keras mask of `v`) and "
                "causal=True only; an `attention_mask` (such as UNILM's) or an "
                "`attention_bias` cannot be linearized."
            )
        if cache is not None:
            raise ValueError("PerformerAttention has no key/value cache; decode with an "
                             "explicit-softmax model.")
        return super().call(inputs, mask=mask, training=training, **kwargs)

    def attend(self, qw, kw, vw, visible=None, training=None, relative=None, bias=None,
               fuse=True):
        qw, kw, vw = (swap_length_and_heads(x) for x in (qw, kw, vw))  # performer's layout
        if self.attention_scale:  # exp(q.k / sqrt(d)): scale both sides by d^(-1/4)
            qw, kw = qw / self.key_size**0.25, kw / self.key_size**0.25
        q_features = performer.positive_features(qw, self.random_features, is_query=True)
        k_features = performer.positive_features(kw, self.random_features, is_query=False)
        key_mask = None if visible is None else ops.any(visible, axis=(1, 2))
        output = performer.linear_attention(q_features, k_features, vw, key_mask, self.causal)
        probs = None
        if self.return_attention_scores:
            probs = self._zero_rows_without_keys(
                performer.quadratic_attention(q_features, k_features, key_mask, self.causal),
                visible)
        output = ops.cast(output, vw.dtype)
        return self._merge_heads(output, visible, ops.shape(qw)[1]), probs

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_random_features": self.num_random_features,
            "causal": self.causal,
            "feature_seed": self.feature_seed,
        })
        return config
