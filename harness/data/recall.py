"""Multi-query associative recall (MQAR, after Zoology) framed as classification.

Layout of one sequence of ``seq_len`` tokens (0-based positions, P = n_pairs, Q = n_queries)::

    0          CLS
    1 .. 2P    context: k_1 v_1 ... k_P v_P (distinct keys, values drawn with replacement)
    2P+1 ..    query region of 2-token slots, FILL elsewhere; Q slots hold "k v" for Q distinct
               context keys (answered queries, as in MQAR's inputs), slots chosen with
               P(slot s) proportional to (s + 1) ** -alpha (s = 0 is right after the context)
    seq_len-1  the designated query key k_q, a context key not among the answered queries

Label: the index (0 .. ``num_values`` - 1) of the value paired with k_q in the context. The
designated key is picked by its distance from the end of the context: the pair at rank r (r = 0 is
the last pair) with probability proportional to (r + 1) ** -alpha, so both the answered queries and
the designated one sit at power-law distributed distances (``alpha = 0`` is uniform). A model must
find k_q's earlier occurrence and read the next token; the answered queries are distractors that
also repeat bindings. Token ids: 0 pad, 1 CLS, 2 FILL, keys ``3 .. 3+num_keys-1``, then values.
"""

from __future__ import annotations

import numpy as np
import torch

from harness.data.base import Split, TaskData, check_int, derive_seed
from harness.data.registry import register_task

__all__ = ["FILL_ID", "KEY_OFFSET", "generate_recall", "load_recall"]

PAD_ID, CLS_ID, FILL_ID = 0, 1, 2
KEY_OFFSET = 3


def _gumbel_top_k(rng: np.random.Generator, log_weights: np.ndarray, k: int) -> np.ndarray:
    """Per row, ``k`` indices drawn without replacement with probability proportional to weights."""
    scores = log_weights + rng.gumbel(size=log_weights.shape)
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def generate_recall(
    n: int,
    *,
    seq_len: int = 128,
    n_pairs: int = 16,
    n_queries: int = 8,
    num_keys: int = 64,
    num_values: int = 16,
    alpha: float = 1.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` sequences ``(n, seq_len)`` int64, labels ``(n,)`` and designated-key distances.

    The distance is the number of positions from the designated key's context occurrence to the
    final (query) position.
    """
    task = "recall"
    check_int("n", n, task)
    check_int("n_pairs", n_pairs, task, minimum=1)
    check_int("n_queries", n_queries, task)
    check_int("num_keys", num_keys, task, minimum=n_pairs)
    check_int("num_values", num_values, task, minimum=2)
    if n_queries > n_pairs - 1:
        raise ValueError(
            f"recall: n_queries={n_queries} must be <= n_pairs - 1 = {n_pairs - 1} (the designated"
            " key is not among the answered queries); lower n_queries or raise n_pairs"
        )
    need = 2 + 2 * n_pairs + 2 * n_queries
    check_int("seq_len", seq_len, task)
    if seq_len < need:
        raise ValueError(
            f"recall: seq_len={seq_len} is too short for n_pairs={n_pairs} and"
            f" n_queries={n_queries};"
            f" need at least 2 + 2*n_pairs + 2*n_queries = {need}"
        )
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha < 0:
        raise ValueError(f"recall: alpha must be a number >= 0, got {alpha!r}")
    rng = np.random.default_rng(seed)
    rows = np.arange(n)[:, None]
    keys = np.argsort(rng.random((n, num_keys)), axis=1)[:, :n_pairs]  # distinct per row
    values = rng.integers(0, num_values, size=(n, n_pairs))
    seqs = np.full((n, seq_len), FILL_ID, dtype=np.int64)
    seqs[:, 0] = CLS_ID
    seqs[:, 1 : 1 + 2 * n_pairs : 2] = keys + KEY_OFFSET
    seqs[:, 2 : 2 + 2 * n_pairs : 2] = values + KEY_OFFSET + num_keys

    # designated pair: rank r from the end of the context with weight (r + 1) ** -alpha
    rank_weights = -alpha * np.log(np.arange(n_pairs, 0, -1, dtype=np.float64))  # pair i -> r+1
    designated = _gumbel_top_k(rng, np.broadcast_to(rank_weights, (n, n_pairs)), 1)[:, 0]
    # answered queries: Q distinct other pairs, in random order
    others = np.where(np.arange(n_pairs)[None, :] == designated[:, None], -np.inf, 0.0)
    queried = _gumbel_top_k(rng, others, n_queries) if n_queries else np.zeros((n, 0), np.int64)
    # their slots in the query region: slot s with weight (s + 1) ** -alpha
    n_slots = (seq_len - 2 - 2 * n_pairs) // 2
    slot_weights = -alpha * np.log(np.arange(1, n_slots + 1, dtype=np.float64))
    slots = _gumbel_top_k(rng, np.broadcast_to(slot_weights, (n, n_slots)), n_queries)
    positions = 1 + 2 * n_pairs + 2 * slots
    seqs[rows, positions] = keys[rows, queried] + KEY_OFFSET
    seqs[rows, positions + 1] = values[rows, queried] + KEY_OFFSET + num_keys

    seqs[:, -1] = keys[np.arange(n), designated] + KEY_OFFSET
    labels = values[np.arange(n), designated]
    distances = (seq_len - 1) - (1 + 2 * designated)
    return seqs, labels.astype(np.int64), distances.astype(np.int64)


@register_task("recall")
def load_recall(
    *,
    n_train: int = 2000,
    n_val: int = 200,
    n_test: int = 200,
    seq_len: int = 128,
    n_pairs: int = 16,
    n_queries: int = 8,
    num_keys: int = 64,
    num_values: int = 16,
    alpha: float = 1.0,
    seed: int = 0,
) -> TaskData:
    """MQAR as ``num_values``-way classification of the final query key's value (see module doc)."""
    params = {
        "n_train": n_train,
        "n_val": n_val,
        "n_test": n_test,
        "seq_len": seq_len,
        "n_pairs": n_pairs,
        "n_queries": n_queries,
        "num_keys": num_keys,
        "num_values": num_values,
        "alpha": alpha,
        "seed": seed,
    }
    splits: dict[str, Split] = {}
    distance_stats: dict[str, dict[str, float]] = {}
    for split_name, count, label in (
        ("train", n_train, "n_train"),
        ("validation", n_val, "n_val"),
        ("test", n_test, "n_test"),
    ):
        check_int(label, count, "recall")
        seqs, labels, distances = generate_recall(
            count,
            seq_len=seq_len,
            n_pairs=n_pairs,
            n_queries=n_queries,
            num_keys=num_keys,
            num_values=num_values,
            alpha=alpha,
            seed=derive_seed(seed, "recall", split_name),
        )
        ids = torch.from_numpy(seqs)
        splits[split_name] = Split(
            ids, torch.ones_like(ids, dtype=torch.bool), torch.from_numpy(labels)
        )
        if count:
            distance_stats[split_name] = {
                "mean": float(distances.mean()),
                "median": float(np.median(distances)),
                "min": int(distances.min()),
                "max": int(distances.max()),
            }
    return TaskData(
        name="recall",
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        num_classes=num_values,
        vocab_size=KEY_OFFSET + num_keys + num_values,
        pad_id=PAD_ID,
        max_len=seq_len,
        label_names=[f"v{i}" for i in range(num_values)],
        tokenizer=None,
        info={
            "generator": "multi-query associative recall (MQAR), classification of the last query",
            "params": params,
            "token_ids": {
                "pad": PAD_ID,
                "cls": CLS_ID,
                "fill": FILL_ID,
                "keys": [KEY_OFFSET, KEY_OFFSET + num_keys - 1],
                "values": [KEY_OFFSET + num_keys, KEY_OFFSET + num_keys + num_values - 1],
            },
            "sizes": {k: len(v) for k, v in splits.items()},
            "designated_distance": distance_stats,
        },
    )
