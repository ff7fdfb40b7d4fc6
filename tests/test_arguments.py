"""The shared checks of public arguments (`bert4keras_ext.arguments`): NumPy scalars work as the
Python numbers they hold, bool is never a number, NaN never passes, one string is one pattern,
schedules are sorted and checked (reliability probe 2: D11-D16, O01-O04, O07, O09)."""
import json
import math

import numpy as np
import pytest

from bert4keras_ext import arguments
from bert4keras_ext.arguments import ArgumentTypeError

pytestmark = pytest.mark.backend_neutral


def test_integer_takes_numpy_integers_as_python_ints():
    for value in (3, np.int64(3), np.int32(3), np.uint8(3)):
        checked = arguments.integer(value, "topk", minimum=1)
        assert checked == 3 and type(checked) is int
    assert json.dumps(arguments.integer(np.int64(7), "maxlen")) == "7"  # configs serialize
    assert arguments.integer(-5, "output_axis") == -5  # no minimum: any integer


def test_integer_refuses_non_integers_and_small_values():
    for value, error, message in [
        (True, ArgumentTypeError, r"`topk` must be a positive integer; received True \(bool\)\."),
        (np.bool_(True), ArgumentTypeError, r"received np.True_ \(bool\)|received True \(bool_\)"),
        (2.0, ArgumentTypeError, r"`topk` must be a positive integer; received 2.0 \(float\)\."),
        ("2", ArgumentTypeError, r"received '2' \(str\)"),
        (None, ArgumentTypeError, r"received None \(NoneType\)"),
        (0, ValueError, r"`topk` must be a positive integer; received 0\.$"),
        (np.int64(-1), ValueError, r"`topk` must be a positive integer; received -1\.$"),
    ]:
        with pytest.raises(error, match=message):
            arguments.integer(value, "topk", minimum=1)


def test_integer_wording_of_the_bound():
    with pytest.raises(ValueError, match=r"`min_ends` must be an integer >= 2; received 1\."):
        arguments.integer(1, "min_ends", minimum=2)
    with pytest.raises(ArgumentTypeError, match=r"`axis` must be an integer; received 1.5"):
        arguments.integer(1.5, "axis")


def test_argument_type_error_is_a_type_and_a_value_error():
    """Callers that caught the ValueError of the older checks keep working."""
    assert issubclass(ArgumentTypeError, TypeError) and issubclass(ArgumentTypeError, ValueError)


def test_real_takes_numpy_and_python_numbers_as_floats():
    for value in (0.7, np.float32(0.5), np.float64(0.7), np.int64(2), 3):
        checked = arguments.real(value, "temperature", above=0)
        assert type(checked) is float and checked == float(value)
    assert arguments.real(-2.5, "length_penalty") == -2.5
    assert arguments.real(math.inf, "x", finite=False) == math.inf


def test_real_refuses_bool_nan_and_out_of_range_values():
    for kwargs, value, error, message in [
        ({"above": 0}, 0.0, ValueError, r"`r` must be a finite number > 0; received 0.0\."),
        ({"above": 0}, True, ArgumentTypeError, r"`r` must be a finite number > 0; received True "
                                                r"\(bool\)"),
        ({}, math.nan, ValueError, r"`r` must be a finite number; received nan\."),
        ({}, np.float32("nan"), ValueError, r"received nan"),
        ({"finite": False}, math.nan, ValueError, r"`r` must be a number; received nan\."),
        ({}, math.inf, ValueError, r"`r` must be a finite number; received inf\."),
        ({"minimum": 0}, -1e-3, ValueError, r"`r` must be a finite number >= 0; received -0.001"),
        ({"maximum": 1}, 1.5, ValueError, r"`r` must be a finite number <= 1; received 1.5"),
        ({"below": 1}, 1.0, ValueError, r"`r` must be a finite number < 1; received 1.0"),
        ({"minimum": 0, "below": 1}, 1.0, ValueError, r"`r` must be a number in \[0, 1\); "
                                                      r"received 1.0"),
        ({"above": 0, "maximum": 1}, 0.0, ValueError, r"`r` must be a number in \(0, 1\]; "
                                                      r"received 0.0"),
        ({"minimum": 0, "maximum": 1}, math.nan, ValueError, r"in \[0, 1\]; received nan"),
        ({}, "0.5", ArgumentTypeError, r"received '0.5' \(str\)"),
        ({}, 1j, ArgumentTypeError, r"received 1j \(complex\)"),
    ]:
        with pytest.raises(error, match=message):
            arguments.real(value, "r", **kwargs)


def test_bounds_are_inclusive_or_strict_as_named():
    assert arguments.real(0, "r", minimum=0, below=1) == 0.0
    assert arguments.real(1, "r", above=0, maximum=1) == 1.0
    assert arguments.real(1, "r", minimum=1) == 1.0


def test_patterns_one_string_is_one_pattern():
    """Reliability probe 2, O09: 'bias' is one pattern, not ['b', 'i', 'a', 's']."""
    assert arguments.patterns("bias", "exclude") == ["bias"]
    assert arguments.patterns(None, "exclude") == []
    assert arguments.patterns(("Norm", "bias"), "exclude") == ["Norm", "bias"]
    assert arguments.patterns(iter(["a"]), "exclude") == ["a"]
    with pytest.raises(TypeError, match=r"`exclude` must be a regular expression or a list of "
                                        r"them; received 5"):
        arguments.patterns(5, "exclude")
    with pytest.raises(TypeError, match=r"received \['bias', None\]"):
        arguments.patterns(["bias", None], "exclude")
    with pytest.raises(ValueError, match=r"`exclude` holds '\[', which is not a regular"):
        arguments.patterns(["["], "exclude")


def test_schedule_sorted_from_dicts_and_pairs():
    """Reliability probe 2, O03: steps are sorted, as bert4keras sorts them."""
    expected = [(0, 0.0), (1000, 1.0), (2000, 0.1)]
    assert arguments.schedule({1000: 1.0, 0: 0.0, 2000: 0.1}, "s") == expected
    assert arguments.schedule([[2000, 0.1], (0, 0), [1000, np.float32(1.0)]], "s") == expected
    points = arguments.schedule({np.int64(5): np.float32(0.5)}, "s")
    assert points == [(5, 0.5)] and [type(v) for v in points[0]] == [int, float]
    # JSON writes dict keys as strings (a config file, a .keras file saved from a dict).
    assert arguments.schedule({"2000": 0.1, "0": 0, "1000": 1}, "s") == expected


def test_schedule_refuses_bad_steps_and_multipliers():
    """Reliability probe 2, O01, O02, O04."""
    for schedule, error, message in [
        # O01 (a negative multiplier: gradient ascent), O02 (NaN: NaN weights), O04 (float steps).
        ({0: -1.0, 10: -1.0}, ValueError, r"`s\[0\]` must be a finite number >= 0; received -1.0"),
        ({0: math.nan, 10: 1.0}, ValueError, r"`s\[0\]` must be a finite number >= 0; "
                                             r"received nan"),
        ({0: 1.0, 10: math.inf}, ValueError, r"`s\[10\]` must be a finite number >= 0; "
                                             r"received inf"),
        ({0.5: 1.0, 1.5: 0.1}, ValueError, r"`s` steps must be integers >= 0; received the "
                                           r"step 0.5"),
        ({True: 1.0}, ValueError, r"steps must be integers >= 0; received the step True"),
        ({-1: 1.0}, ValueError, r"steps must be integers >= 0; received the step -1"),
        ({"1e3": 1.0}, ValueError, r"received the step '1e3'"),
        ({10: True}, ArgumentTypeError, r"`s\[10\]` must be a finite number >= 0; received True"),
        ([(10, 1.0), (10, 0.5)], ValueError, r"`s` gives a step more than once"),
        ({}, ArgumentTypeError, r"`s` must be a non-empty dict \{step: multiplier\}; received "
                                r"\{\}"),
        (None, ArgumentTypeError, r"received None"),
        ([1, 2], ArgumentTypeError, r"received \[1, 2\]"),
    ]:
        with pytest.raises(error, match=message):
            arguments.schedule(schedule, "s")


def test_layer_constructors_store_numpy_counts_as_python_numbers():
    """Layers check their counts with the same functions: NumPy integers (e.g. from a config
    array) give configs that JSON can write, and bool / NaN are refused by name."""
    from bert4keras_ext import layers

    made = [
        layers.MultiHeadAttention(np.int64(2), np.int64(4), key_size=np.int64(4),
                                  out_dim=np.int64(8), softmax_plus_base=np.float32(512),
                                  taylor_order=np.int64(2)),
        layers.FeedForward(np.int64(8)),
        layers.RelativePositionBias(np.int64(2), num_buckets=np.int64(8),
                                    max_distance=np.int64(16)),
        layers.GlobalPointer(np.int64(2), np.int64(4)),
        layers.GatedAttentionUnit(np.int64(8), np.int64(4)),
        layers.ConditionalRandomField(lr_multiplier=np.float32(2.0)),
        layers.MaximumEntropyMarkovModel(hidden_dim=np.int64(3)),
        layers.PerformerAttention(np.int64(2), np.int64(4), num_random_features=np.int64(8)),
        layers.SinusoidalPositionEmbedding(np.int64(8)),
    ]
    for layer in made:
        json.dumps(layer.get_config())
    for make, message in [
        (lambda: layers.MultiHeadAttention(True, 4), r"`heads` must be a positive integer; "
                                                     r"received True \(bool\)"),
        (lambda: layers.MultiHeadAttention(2, 4, key_size=0), r"`key_size` must be a positive"),
        (lambda: layers.MultiHeadAttention(2, 4, softmax_plus_base=math.nan),
         r"`softmax_plus_base` must be a finite number > 1; received nan"),
        (lambda: layers.MultiHeadAttention(2, 4, taylor_order=3),
         r"`taylor_order` of the Taylor softmax must be an even integer >= 2; received 3"),
        (lambda: layers.ConditionalRandomField(lr_multiplier=math.nan),
         r"`lr_multiplier` must be a finite number > 0; received nan"),
        (lambda: layers.SinusoidalPositionEmbedding(7), r"`output_dim` must be a positive even"),
        (lambda: layers.RelativePositionBias(2, max_distance=0.5), r"`max_distance` must be a"),
    ]:
        with pytest.raises(ValueError, match=message):
            make()
