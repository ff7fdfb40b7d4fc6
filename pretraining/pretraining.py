"""Pretrains a BERT (masked LM), GPT (causal LM) or UNILM model, on the route of the Keras
backend: `KERAS_BACKEND=tensorflow` (tf_route.py: TFRecord shards, `tf.distribute` on CPUs,
GPUs, several machines and TPU) or `KERAS_BACKEND=jax` (jax_route.py: ArrayRecord shards,
`keras.distribution` data and model parallelism over all devices of one or several
processes, Orbax checkpoints; TensorFlow is not imported). Both take the same flags
(options.py), train the same way (loss, optimizers, schedules, accumulation, EMA, non-finite
checks), resume after a kill and export an original-format BERT checkpoint at the end.

Source: bert4keras's pretraining scripts (https://github.com/bojone/bert4keras, `pretraining/`)
and the post https://kexue.fm/archives/7055 on pretraining BERT with tf.keras on TPU.

    python pretraining/pretraining.py --mode roberta --config bert_config.json \
        --data 'corpus/train-*.tfrecord' --seq-len 512 --global-batch-size 4096 \
        --grad-accum-steps 16 --optimizer lamb --lr 0.00176 --warmup-steps 3125 \
        --total-steps 125000 --weight-decay 0.01 --strategy mirrored --model-dir runs/roberta
    KERAS_BACKEND=jax python pretraining/pretraining.py ... --data 'corpus/train-*.arrayrecord'

See pretraining/README.md for several GPUs, machines and TPUs.
"""
import importlib
import os
import sys

import keras

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from options import argument_parser  # noqa: E402


def train(trainer):
    """Trains a route's prepared run, and exports once `--total-steps` is reached; returns the
    logged records."""
    records = trainer.run()
    if trainer.update >= trainer.args.total_steps:
        path = trainer.export()
        if path:
            print(f"exported the final weights to {path}")
    return records


def main(argv=None):
    parser = argument_parser()
    args = parser.parse_args(argv)
    route = importlib.import_module("jax_route" if keras.backend.backend() == "jax"
                                    else "tf_route")
    try:
        trainer = route.prepare(args)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    try:
        train(trainer)
    except (FloatingPointError, ValueError, OSError) as error:
        sys.exit(f"error: {error}")
    finally:
        route.release(trainer)


if __name__ == "__main__":
    main()
