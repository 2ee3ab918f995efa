"""ListOps (LRA's rules): nested MIN / MAX / MED / SM expressions over digits, 10 classes.

An expression is a digit or ``[OP a1 ... ak ]`` with 2 <= k <= ``max_args`` arguments, each an
expression; ``MED`` is the median rounded down and ``SM`` the sum mod 10. Trees are grown as in
LRA's generator: below ``max_depth`` a node is an operator with probability ``OP_PROB`` (0.25),
else a digit (always a digit at ``max_depth``); the root is depth 1. Expressions whose sequence
length (CLS + tokens) falls outside [min_len, max_len] are rejected, and every expression is unique
across the three splits (LRA keeps a set). Each split has its own seeded stream.

For speed, tree shapes are drawn level by level for thousands of trees at once with numpy (the
number of operators per level is binomial, their arities multinomial), lengths are checked
vectorized, and accepted shapes are filled with operators and digits in the same vectorized way;
:func:`_materialize` explains why this has exactly the law of the node-by-node recursion.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch

from harness.data.base import Split, TaskData, check_int, derive_seed
from harness.data.registry import register_task
from harness.data.tokenization import WordTokenizer, pack

__all__ = [
    "LISTOPS_TOKENS",
    "OPERATORS",
    "evaluate_listops",
    "generate_listops",
    "listops_tokenizer",
    "load_listops",
]

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
CLOSE = "]"
DIGITS = tuple(str(d) for d in range(10))
LISTOPS_TOKENS = (*DIGITS, *OPERATORS, CLOSE)
_VOCAB = np.array(LISTOPS_TOKENS)
OP_PROB = 0.25  # LRA's VALUE_P: chance that a node below max_depth is an operator


def _apply(op: str, args: Sequence[int]) -> int:
    if op == "[MIN":
        return min(args)
    if op == "[MAX":
        return max(args)
    if op == "[MED":
        ordered = sorted(args)
        mid = len(ordered) // 2
        if len(ordered) % 2:
            return ordered[mid]
        return (ordered[mid - 1] + ordered[mid]) // 2  # median rounded down
    return sum(args) % 10  # [SM


def evaluate_listops(expression: str | Sequence[str]) -> int:
    """The value (0-9) of a ListOps expression given as a string or a token list.

    >>> evaluate_listops("[MAX 2 9 [MIN 4 7 ] 0 ]")
    9
    """
    tokens = expression.split() if isinstance(expression, str) else list(expression)
    if not tokens:
        raise ValueError("evaluate_listops: empty expression")
    stack: list[tuple[str, list[int]]] = []
    result: int | None = None
    for pos, token in enumerate(tokens):
        if result is not None:
            raise ValueError(
                f"evaluate_listops: extra token {token!r} at position {pos} after a complete"
                " expression"
            )
        if token in OPERATORS:
            stack.append((token, []))
            continue
        if token in DIGITS:
            value = int(token)
        elif token == CLOSE:
            if not stack:
                raise ValueError(f"evaluate_listops: unmatched ']' at position {pos}")
            op, args = stack.pop()
            if not args:
                raise ValueError(
                    f"evaluate_listops: operator {op} closed with no arguments at {pos}"
                )
            value = _apply(op, args)
        else:
            raise ValueError(
                f"evaluate_listops: unknown token {token!r} at position {pos};"
                f" valid tokens: {' '.join(LISTOPS_TOKENS)}"
            )
        if stack:
            stack[-1][1].append(value)
        else:
            result = value
    if stack or result is None:
        raise ValueError(f"evaluate_listops: {len(stack)} operator(s) left open at the end")
    return result


def _max_tokens(max_depth: int, max_args: int) -> int:
    size = 1
    for _ in range(max_depth - 1):
        size = 2 + max_args * size
    return size


class _Shapes:
    """Level-by-level tree shapes for a batch: per depth, node counts and arity counts per tree.

    With ``op_root`` every root is an operator: when ``min_len > 2`` a digit root is always
    rejected, so drawing only operator roots changes nothing but the time spent. Trees that grow
    past ``limit`` tokens are dropped from later levels and get length ``limit + 1``.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        batch: int,
        max_depth: int,
        max_args: int,
        limit: int,
        op_root: bool,
    ) -> None:
        arities = np.arange(2, max_args + 1)
        pvals = np.full(arities.shape[0], 1.0 / arities.shape[0])
        active = np.arange(batch)  # trees still within the limit
        nodes = np.ones(batch, dtype=np.int64)  # nodes of the active trees at this depth
        totals = np.zeros(batch, dtype=np.int64)  # tokens so far: 2 per operator, 1 per digit
        self.level_nodes: list[np.ndarray] = []
        self.level_arity_counts: list[np.ndarray] = []
        for depth in range(1, max_depth + 1):
            if depth == max_depth:
                ops = np.zeros_like(nodes)
            elif depth == 1 and op_root:
                ops = nodes.copy()
            else:
                ops = rng.binomial(nodes, OP_PROB)
            counts = rng.multinomial(ops, pvals)  # (active, max_args - 1)
            children = counts @ arities
            level_nodes = np.zeros(batch, dtype=np.int64)
            level_nodes[active] = nodes
            level_counts = np.zeros((batch, arities.shape[0]), dtype=np.int64)
            level_counts[active] = counts
            self.level_nodes.append(level_nodes)
            self.level_arity_counts.append(level_counts)
            totals[active] += nodes + ops
            # every node still to be grown adds at least one token
            keep = totals[active] + children <= limit
            totals[active[~keep]] = limit + 1
            active, nodes = active[keep], children[keep]
        self.lengths = totals
        self.max_args = max_args


def _materialize(
    rng: np.random.Generator, shapes: _Shapes, trees: np.ndarray
) -> tuple[list[str], np.ndarray]:
    """Token strings and values of the batch's ``trees``, all built at once, level by level.

    Given a tree's level counts, which nodes of a level are operators is a uniform subset and the
    arities are a uniform permutation of the drawn multiset: LRA's node-by-node process gives every
    tree a probability that depends only on its numbers of digits, operators and arities, so this
    has exactly its law. Operators and digits are then drawn uniformly. Tokens are put in
    depth-first order by sorting on each token's path from the root; values are reduced bottom-up.
    """
    n_trees = trees.shape[0]
    if n_trees == 0:
        return [], np.zeros(0, dtype=np.int64)
    depth_count = len(shapes.level_nodes)
    max_args = shapes.max_args
    width = max(depth_count - 1, 1)
    close_mark = max_args + 1  # sorts after all children, which use 1..max_args
    tree_of = np.arange(n_trees)
    paths = np.zeros((n_trees, width), dtype=np.int16)
    levels: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (token, parents, arities)
    entries_tree, entries_path, entries_token = [], [], []
    for depth in range(depth_count):
        m = tree_of.shape[0]
        if m == 0:
            break
        counts = shapes.level_arity_counts[depth][trees]  # (n_trees, max_args - 1)
        # operators: the n_ops[t] nodes of lowest random rank within each tree
        order = np.lexsort((rng.random(m), tree_of))
        rank = np.empty(m, dtype=np.int64)
        rank[order] = np.arange(m) - np.searchsorted(tree_of, tree_of[order])
        is_op = rank < counts.sum(axis=1)[tree_of]
        # arities: each tree's multiset in random order, given to its operators left to right
        flat = counts.ravel()
        values = np.repeat(np.tile(np.arange(2, max_args + 1), n_trees), flat)
        owner = np.repeat(np.repeat(np.arange(n_trees), max_args - 1), flat)
        parents = np.flatnonzero(is_op)
        arities = values[np.lexsort((rng.random(values.shape[0]), owner))]
        token = np.where(is_op, 10 + rng.integers(0, 4, size=m), rng.integers(0, 10, size=m))
        levels.append((token, parents, arities))
        entries_tree += [tree_of, tree_of[parents]]
        close_paths = paths[parents].copy()
        if parents.size:
            close_paths[:, depth] = close_mark
        entries_path += [paths, close_paths]
        entries_token += [token, np.full(parents.shape[0], 14)]
        # next level: children of each operator in order, child j gets path digit j (1-based)
        starts = np.cumsum(arities) - arities
        child_parent = np.repeat(parents, arities)
        child_index = 1 + np.arange(child_parent.shape[0]) - np.repeat(starts, arities)
        child_paths = paths[child_parent].copy()
        if child_parent.size:
            child_paths[:, depth] = child_index
        tree_of, paths = tree_of[child_parent], child_paths

    texts = _depth_first_texts(np.concatenate(entries_tree), np.concatenate(entries_path),
                               np.concatenate(entries_token), n_trees, max_args + 2)
    return texts, _evaluate(levels)


def _evaluate(levels: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """The value of each tree's root, reduced bottom-up from ``levels`` (per level: every node's
    token, the indices of its operator nodes, and their arities, children in node order)."""
    below: np.ndarray | None = None  # values of the level below, in its node order
    for token, parents, arities in reversed(levels):
        value = token.copy()
        if parents.size:
            assert below is not None
            starts = np.cumsum(arities) - arities
            segment = np.repeat(np.arange(parents.shape[0]), arities)
            ordered = below[np.lexsort((below, segment))]
            median = (ordered[starts + (arities - 1) // 2] + ordered[starts + arities // 2]) // 2
            results = np.stack(
                [
                    np.minimum.reduceat(below, starts),
                    np.maximum.reduceat(below, starts),
                    median,
                    np.add.reduceat(below, starts) % 10,
                ]
            )
            value[parents] = results[token[parents] - 10, np.arange(parents.shape[0])]
        below = value
    assert below is not None
    return below


def _depth_first_texts(all_tree: np.ndarray, all_path: np.ndarray, all_token: np.ndarray,
                       n_trees: int, base: int) -> list[str]:
    """Each tree's tokens joined in depth-first order: sorted by tree, then by the token's path
    from the root (one digit per level, each below ``base``)."""
    width = all_path.shape[1]
    if n_trees * base**width < 2**62:  # one int64 key: tree, then path digits
        key = all_tree.astype(np.int64)
        for column in range(width):
            key = key * base + all_path[:, column]
        order = np.argsort(key, kind="stable")
    else:
        order = np.lexsort((*(all_path[:, c] for c in reversed(range(width))), all_tree))
    words = _VOCAB[all_token[order]]
    bounds = np.concatenate(([0], np.cumsum(np.bincount(all_tree, minlength=n_trees))))
    return [" ".join(words[bounds[i] : bounds[i + 1]].tolist()) for i in range(n_trees)]


def generate_listops(
    n: int,
    *,
    min_len: int = 100,
    max_len: int = 300,
    max_depth: int = 10,
    max_args: int = 10,
    seed: int = 0,
    exclude: set[str] | None = None,
    max_trees: int | None = None,
) -> tuple[list[str], list[int]]:
    """``n`` unique expressions (strings) with their labels; CLS + tokens within [min_len, max_len].

    Tree shapes are drawn in vectorized batches, level by level, with the same law as LRA's
    recursive generator; only accepted shapes are turned into tokens. Expressions in ``exclude``
    are skipped, and accepted ones are added to it. The same seed (with the same numpy version)
    gives the same expressions.
    """
    task = "listops"
    check_int("n", n, task)
    check_int("min_len", min_len, task, minimum=2)
    check_int("max_len", max_len, task, minimum=min_len)
    check_int("max_depth", max_depth, task, minimum=1)
    check_int("max_args", max_args, task, minimum=2)
    if max_args > 1000:
        raise ValueError(f"listops: max_args must be <= 1000, got {max_args}")
    longest = _max_tokens(max_depth, max_args)
    if longest + 1 < min_len:
        raise ValueError(
            f"listops: with max_depth={max_depth} and max_args={max_args} an expression has at most"
            f" {longest} tokens, below min_len={min_len} - 1; raise max_depth or max_args or lower"
            " min_len"
        )
    exclude = set() if exclude is None else exclude
    rng = np.random.default_rng(seed)
    limit = max_len - 1
    cap = max_trees if max_trees is not None else 5000 * n + 1_000_000
    texts: list[str] = []
    labels: list[int] = []
    drawn = 0
    while len(texts) < n:
        if drawn >= cap:
            raise ValueError(
                f"listops: only {len(texts)} of {n} expressions within [{min_len}, {max_len}] after"
                f" {drawn} trees; widen the length range or change max_depth/max_args"
            )
        shapes = _Shapes(rng, 8192, max_depth, max_args, limit, op_root=min_len > 2)
        drawn += 8192
        accepted = np.flatnonzero((shapes.lengths + 1 >= min_len) & (shapes.lengths <= limit))
        wanted = (n - len(texts)) * 11 // 10 + 16  # a margin for duplicates
        batch_texts, batch_values = _materialize(rng, shapes, accepted[:wanted])
        for text, value in zip(batch_texts, batch_values.tolist(), strict=True):
            if text in exclude:
                continue
            exclude.add(text)
            texts.append(text)
            labels.append(value)
            if len(texts) == n:
                break
    return texts, labels


def listops_tokenizer() -> WordTokenizer:
    """The ListOps vocabulary: ``[PAD]`` ``[CLS]`` ``[UNK]``, digits, operators, ``]``."""
    return WordTokenizer(LISTOPS_TOKENS, split="whitespace")


@register_task("listops")
def load_listops(
    *,
    n_train: int = 2000,
    n_val: int = 200,
    n_test: int = 200,
    min_len: int = 100,
    max_len: int = 300,
    max_depth: int = 10,
    max_args: int = 10,
    seed: int = 0,
) -> TaskData:
    """ListOps with sequences (CLS included) of ``min_len``..``max_len`` tokens, padded to max_len.

    LRA's full setting is ``min_len=500, max_len=2000, max_depth=10, max_args=10`` with 96k/2k/2k.
    """
    tokenizer = listops_tokenizer()
    seen: set[str] = set()
    splits: dict[str, Split] = {}
    class_counts: dict[str, list[int]] = {}
    for split_name, count in (("train", n_train), ("validation", n_val), ("test", n_test)):
        texts, labels = generate_listops(
            check_int(f"n_{'val' if split_name == 'validation' else split_name}", count, "listops"),
            min_len=min_len,
            max_len=max_len,
            max_depth=max_depth,
            max_args=max_args,
            seed=derive_seed(seed, "listops", split_name),
            exclude=seen,
        )
        ids, mask = pack(tokenizer.encode_many(texts), max_len, tokenizer.pad_id, tokenizer.cls_id)
        splits[split_name] = Split(ids, mask, torch.tensor(labels, dtype=torch.long), texts=texts)
        counts = Counter(labels)
        class_counts[split_name] = [counts.get(c, 0) for c in range(10)]
    return TaskData(
        name="listops",
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        num_classes=10,
        vocab_size=tokenizer.vocab_size,
        pad_id=tokenizer.pad_id,
        max_len=max_len,
        label_names=list(DIGITS),
        tokenizer=tokenizer,
        info={
            "generator": "listops (LRA rules)",
            "params": {
                "n_train": n_train,
                "n_val": n_val,
                "n_test": n_test,
                "min_len": min_len,
                "max_len": max_len,
                "max_depth": max_depth,
                "max_args": max_args,
                "seed": seed,
                "op_prob": OP_PROB,
            },
            "length_counts_cls": True,
            "sizes": {k: len(v) for k, v in splits.items()},
            "class_counts": class_counts,
            "mean_length": {k: float(v.lengths.float().mean()) for k, v in splits.items()},
        },
    )
