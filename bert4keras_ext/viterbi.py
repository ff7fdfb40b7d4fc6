"""Viterbi decoding of a linear-chain CRF's best label path, in NumPy.

Sources: "Error Bounds for Convolutional Codes and an Asymptotically Optimum Decoding
Algorithm" (Viterbi, 1967), the post "简明条件随机场CRF介绍（附带纯Keras实现）"
(https://kexue.fm/archives/5542) and bert4keras's `snippets.ViterbiDecoder`
(https://github.com/bojone/bert4keras), whose arguments and results this class keeps.

The best path maximizes `sum_t nodes[t, y_t] + sum_t trans[y_t, y_t+1]`. Dynamic programming
keeps, per label, the best score of a path ending in it and a back-pointer per step, so one
sequence costs `O(length * num_labels^2)` time and `O(length * num_labels)` memory.
"""
import numpy as np


class ViterbiDecoder:
    """Best label paths for a transition matrix, optionally restricted at the ends.

    Example:
    ```python
    decoder = ViterbiDecoder(keras.ops.convert_to_numpy(crf.trans), starts=[0], ends=[0])
    labels = decoder.decode(scores[:length])  # scores: the model's [length, num_labels]
    ```

    Args:
        trans: transition scores `[num_labels, num_labels]`, `trans[i, j]` for `i -> j` (a
            CRF's effective transitions, `crf.trans`).
        starts: labels a path may start with (None: any).
        ends: labels a path may end with (None: any).
    """

    def __init__(self, trans, starts=None, ends=None):
        self.trans = np.asarray(trans)
        if self.trans.ndim != 2 or self.trans.shape[0] != self.trans.shape[1]:
            raise ValueError("`trans` must be a square matrix [num_labels, num_labels]; "
                             f"received shape {self.trans.shape}.")
        self.num_labels = len(self.trans)
        labels = range(self.num_labels)
        self.non_starts = [] if starts is None else [i for i in labels if i not in starts]
        self.non_ends = [] if ends is None else [i for i in labels if i not in ends]

    def decode(self, nodes):
        """The best path (int array `[length]`) for label scores `nodes` `[length,
        num_labels]`. `nodes` is not modified (bert4keras's wrote -inf into it); ties go to
        the lowest label, as bert4keras's."""
        nodes = np.array(nodes, dtype=np.result_type(np.asarray(nodes).dtype, self.trans.dtype,
                                                     np.float32))
        if nodes.ndim != 2 or nodes.shape[0] < 1 or nodes.shape[1] != self.num_labels:
            raise ValueError(f"`nodes` must have shape [length >= 1, num_labels="
                             f"{self.num_labels}]; received {nodes.shape}.")
        nodes[0, self.non_starts] = -np.inf
        nodes[-1, self.non_ends] = -np.inf
        scores = nodes[0]
        back_pointers = []
        for step in nodes[1:]:
            candidates = scores[:, None] + self.trans + step[None]
            back_pointers.append(candidates.argmax(axis=0))
            scores = candidates.max(axis=0)
        path = [int(scores.argmax())]
        for pointers in reversed(back_pointers):
            path.append(int(pointers[path[-1]]))
        return np.array(path[::-1])
