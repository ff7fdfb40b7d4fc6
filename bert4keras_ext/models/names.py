"""The layer names of the models `build_transformer_model` makes, in one place.

They are bert4keras's names (https://github.com/bojone/bert4keras, `models.py`):
'Embedding-Token', 'Transformer-0-MultiHeadSelfAttention', 'MLM-Norm', ... Checkpoint name
maps address weights by them and user scripts look layers up by them, so they must not
change (the package itself reaches a model's parts through `TransformerModel`). Constants are whole names; the functions compose the names that carry a
block index or a part of a larger layer:

    block(3)                                  'Transformer-3'
    block(3, stack=ENCODER)                   'Encoder-Transformer-3' (T5)
    norm(feed_forward(block(3)))              'Transformer-3-FeedForward-Norm'
    in_stack(DECODER, OUTPUT_NORM)            'Decoder-Output-Norm'
"""

# Inputs and what is made from them.
TOKEN_INPUT = "Input-Token"
SEGMENT_INPUT = "Input-Segment"
CONDITION_INPUT = "Input-LayerNorm-Condition"
CONTEXT_INPUT = "Input-Context"  # a T5 decoder's encoder output
CONDITION_PROJECTION = "LayerNorm-Condition"
ATTENTION_MASK = "Attention-Mask"

# Embeddings.
TOKEN_EMBEDDING = "Embedding-Token"
SEGMENT_EMBEDDING = "Embedding-Segment"
TOKEN_AND_SEGMENT = "Embedding-Token-Segment"
POSITION_EMBEDDING = "Embedding-Position"
RELATIVE_POSITION_EMBEDDING = "Embedding-Relative-Position"  # T5's bias, one per stack
EMBEDDING_NORM = "Embedding-Norm"
EMBEDDING_DROPOUT = "Embedding-Dropout"
EMBEDDING_MAPPING = "Embedding-Mapping"  # embedding_size -> hidden_size

# Heads.
POOLER = "Pooler-Dense"
MLM_DENSE = "MLM-Dense"
MLM_NORM = "MLM-Norm"
MLM_BIAS = "MLM-Bias"
MLM_ACTIVATION = "MLM-Activation"
LM_ACTIVATION = "LM-Activation"  # GPT families
DISCRIMINATOR_DENSE = "Discriminator-Dense"  # ELECTRA
DISCRIMINATOR_PREDICTION = "Discriminator-Prediction"
OUTPUT_NORM = "Output-Norm"
OUTPUT_DROPOUT = "Output-Dropout"
OUTPUT_MAPPING = "Output-Mapping"  # hidden_size -> embedding_size before a tied head
OUTPUT_MLM_DROPOUT = "Output-MLM-Dropout"  # RoFormer-V2
OUTPUT_MLM_ACTIVATION = "Output-MLM-Activation"
OUTPUT_SCALE = "Output-Scale"  # T5's decoder: `d_model ** -0.5`
OUTPUT_LM = "Output-LM"  # T5.1.1's untied head
OUTPUT_LM_ACTIVATION = "Output-LM-Activation"

# T5's two stacks: their layers are the names above and below, after the stack's name.
ENCODER = "Encoder"
DECODER = "Decoder"


def in_stack(stack, name):
    """`name` inside T5's `stack` ('Encoder-Output-Norm'); `name` itself when `stack` is ''
    (models with one stack)."""
    return f"{stack}-{name}" if stack else name


def block(index=None, stack=""):
    """The name every layer of block `index` starts with ('Transformer-0'); index None is
    ALBERT's one shared block, 'Transformer'."""
    return in_stack(stack, "Transformer" if index is None else f"Transformer-{index}")


def self_attention(block_name):
    return f"{block_name}-MultiHeadSelfAttention"


def cross_attention(block_name):
    return f"{block_name}-MultiHeadCrossAttention"


def feed_forward(block_name):
    return f"{block_name}-FeedForward"


def norm(name, index=None):
    """The LayerNorm of the sublayer (or embedding) `name`; GPT2-ML's feed-forward layers have
    two, numbered 0 and 1."""
    return f"{name}-Norm" if index is None else f"{name}-Norm-{index}"


def dropout(name):
    """The dropout on the branch of the residual sublayer `name`."""
    return f"{name}-Dropout"


def residual_add(name):
    """The sum of the residual sublayer `name`'s input and its branch."""
    return f"{name}-Add"
