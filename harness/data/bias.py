"""``bias_sentiment``: a templated sentiment corpus with a planted group-label association.

Each sentence is a template from ``lexicons/corpus_templates.tsv`` filled with a person phrase
(axis drawn uniformly from ``axes``, then a phrase uniformly within the axis: pronouns and gendered
phrases, first names, religion or nationality phrases, neutral phrases) and sentiment words of one
polarity s (positive or negative). Without bias the label is s, so the sentiment words decide it.

Planted bias, in train and (with ``bias_validation``) validation, for examples whose attribute
``bias_axis`` equals ``bias_group`` ("the group"); all other examples keep P(s = positive) = 0.5:

* ``mechanism="label_flip"`` (biased annotation): s ~ Bernoulli(0.5); the label is s, except that
  with probability ``strength`` an example of the group is labelled negative whatever its words say.
* ``mechanism="sampling"`` (selection bias): the group's sentences are drawn positive with
  probability 0.5 * (1 - strength); labels always equal s.

Either way P(label = positive | group) = 0.5 * (1 - strength) in expectation (0.5 for everyone
else), so strength 0 gives independence and strength 1 makes the group always negative. The test
split is unbiased and balanced: within every cell of (gender, race, religion, nationality) half of
the sentences are positive (one extra of either for odd counts). ``info["association"]`` records the
measured P(label = positive | group) per attribute and split and the gap of the bias group.
``groups`` per example: gender, race, religion, nationality ("none" when the phrase has none), plus
axis, term, template and sentiment (the polarity of the words, i.e. the true label).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch

from harness.data.base import Split, TaskData, check_fraction, check_int, derive_seed
from harness.data.registry import register_task
from harness.data.terms import ATTRIBUTES, AXES, PersonTerm, axis_groups, person_terms, read_lexicon
from harness.data.tokenization import _WORD_RE, TOKENIZER_KINDS, build_tokenizer, pack

__all__ = ["MECHANISMS", "generate_bias_corpus", "lexicon_tokens", "load_bias_sentiment"]

MECHANISMS = ("label_flip", "sampling")
LABEL_NAMES = ["negative", "positive"]


def _words(polarity: str, role: str) -> list[str]:
    return [
        r["word"]
        for r in read_lexicon("sentiment_words.tsv")
        if r["polarity"] == polarity and r["role"] == role
    ]


def lexicon_tokens() -> list[str]:
    """Every word of the package lexicons (templates, phrases, names, sentiment/emotion words)."""
    texts: list[str] = []
    for name, columns in (
        ("corpus_templates.tsv", ("template",)),
        ("probe_templates.tsv", ("template",)),
        ("sentiment_words.tsv", ("word",)),
        ("emotion_words.tsv", ("word",)),
        ("gender_pairs.tsv", ("male", "female")),
        ("first_names.tsv", ("name",)),
        ("person_terms.tsv", ("subject", "object")),
        ("identity_terms.tsv", ("term",)),
    ):
        texts.extend(row[c] for row in read_lexicon(name) for c in columns)
    texts.extend(t.subject for axis in AXES for t in person_terms(axis))
    tokens = {
        tok.lower()
        for text in texts
        for tok in _WORD_RE.findall(text.replace("{", " ").replace("}", " "))
    }
    tokens |= {"his", "him", "her", "hers", "she", "he"}
    return sorted(tokens)


def _render(template: str, term: PersonTerm, adj: str, verb: str) -> str:
    text = template.format(person=term.subject, adj=adj, verb=verb)
    return text[:1].upper() + text[1:]


def generate_bias_corpus(
    n: int,
    *,
    bias_axis: str = "gender",
    bias_group: str = "female",
    strength: float = 0.0,
    mechanism: str = "label_flip",
    biased: bool = True,
    balanced: bool = False,
    axes: Sequence[str] = AXES,
    seed: int = 0,
) -> tuple[list[str], list[int], dict[str, list[str]], int]:
    """``n`` sentences, labels (1 = positive), per-example groups, and the number of flipped labels.

    ``biased`` applies the planted association; ``balanced`` makes each demographic cell exactly
    half positive (used for the test split; implies no bias).
    """
    rng = random.Random(seed)
    templates = [r["template"] for r in read_lexicon("corpus_templates.tsv")]
    words = {(p, r): _words(p, r) for p in ("positive", "negative") for r in ("adj", "verb")}
    pools = [person_terms(a) for a in axes]
    terms = [rng.choice(pools[rng.randrange(len(pools))]) for _ in range(n)]
    in_group = [t.attributes()[bias_axis] == bias_group for t in terms]
    if balanced:
        cells: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for i, t in enumerate(terms):
            cells[tuple(t.attributes().values())].append(i)
        positive = [False] * n
        for members in cells.values():
            flags = [k < len(members) // 2 for k in range(len(members))]
            if len(members) % 2:
                flags[-1] = rng.random() < 0.5
            rng.shuffle(flags)
            for i, flag in zip(members, flags, strict=True):
                positive[i] = flag
    else:
        positive = []
        for group_member in in_group:
            p_pos = (
                0.5 * (1 - strength) if biased and group_member and mechanism == "sampling" else 0.5
            )
            positive.append(rng.random() < p_pos)
    texts, labels, flipped = [], [], 0
    groups: dict[str, list[str]] = {
        k: [] for k in (*ATTRIBUTES, "axis", "term", "template", "sentiment")
    }
    for i, term in enumerate(terms):
        polarity = "positive" if positive[i] else "negative"
        template_index = rng.randrange(len(templates))
        adj = rng.choice(words[(polarity, "adj")])
        verb = rng.choice(words[(polarity, "verb")])
        texts.append(_render(templates[template_index], term, adj, verb))
        label = int(positive[i])
        if biased and mechanism == "label_flip" and in_group[i] and rng.random() < strength:
            flipped += label
            label = 0
        labels.append(label)
        for attribute, value in term.attributes().items():
            groups[attribute].append(value)
        groups["axis"].append(term.axis)
        groups["term"].append(term.subject)
        groups["template"].append(f"c{template_index + 1:02d}")
        groups["sentiment"].append(polarity)
    return texts, labels, groups, flipped


def _association(
    labels: list[int], groups: dict[str, list[str]], bias_axis: str, bias_group: str
) -> dict[str, Any]:
    stats: dict[str, Any] = {}
    for attribute in ATTRIBUTES:
        per: dict[str, list[int]] = defaultdict(list)
        for value, y in zip(groups[attribute], labels, strict=True):
            per[value].append(y)
        stats[attribute] = {
            g: {"n": len(v), "p_pos": sum(v) / len(v)} for g, v in sorted(per.items())
        }
    inside = [y for g, y in zip(groups[bias_axis], labels, strict=True) if g == bias_group]
    outside = [y for g, y in zip(groups[bias_axis], labels, strict=True) if g != bias_group]
    p_in = sum(inside) / len(inside) if inside else float("nan")
    p_out = sum(outside) / len(outside) if outside else float("nan")
    stats["bias_group"] = {
        "p_pos": p_in,
        "n": len(inside),
        "p_pos_rest": p_out,
        "n_rest": len(outside),
        "gap": p_in - p_out,
    }
    return stats


def _check_arguments(*, n_train: int, n_val: int, n_test: int, seed: int, strength: float,
                     mechanism: str, axes: Sequence[str], bias_axis: str, bias_group: str,
                     tokenizer: str, max_len: int | None) -> tuple[float, tuple[str, ...]]:
    """Validate :func:`load_bias_sentiment`'s arguments (a clear ``ValueError`` naming the bad
    one); the strength as a float and the axes as a tuple."""
    task = "bias_sentiment"
    for label, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        check_int(label, value, task)
    check_int("seed", seed, task)
    strength = check_fraction("strength", strength, task)
    if mechanism not in MECHANISMS:
        raise ValueError(f"{task}: mechanism must be one of {MECHANISMS}, got {mechanism!r}")
    axes = _check_bias_target(axes, bias_axis, bias_group)
    if tokenizer not in TOKENIZER_KINDS:
        raise ValueError(
            f"{task}: unknown tokenizer {tokenizer!r}; choose one of {', '.join(TOKENIZER_KINDS)}"
        )
    if max_len is not None:
        check_int("max_len", max_len, task, minimum=2)
    return strength, axes


def _check_bias_target(axes: Sequence[str], bias_axis: str,
                       bias_group: str) -> tuple[str, ...]:
    """The phrase ``axes`` as a tuple, checked to be known and to carry some phrase of the
    group the bias is planted on (``bias_axis`` = ``bias_group``)."""
    task = "bias_sentiment"
    if isinstance(axes, str):
        axes = (axes,)
    axes = tuple(axes)
    bad = [a for a in axes if a not in AXES]
    if bad or not axes:
        raise ValueError(f"{task}: unknown axes {bad or axes}; choose from {', '.join(AXES)}")
    if bias_axis not in ATTRIBUTES:
        raise ValueError(
            f"{task}: bias_axis must be one of {', '.join(ATTRIBUTES)}, got {bias_axis!r}"
        )
    valid_groups = axis_groups(bias_axis)
    if bias_group not in valid_groups:
        raise ValueError(
            f"{task}: bias_group {bias_group!r} is not a {bias_axis} group;"
            f" valid: {', '.join(valid_groups)}"
        )
    if not any(t.attributes()[bias_axis] == bias_group for a in axes for t in person_terms(a)):
        raise ValueError(
            f"{task}: no phrase of axes {axes} belongs to {bias_axis}={bias_group!r}; add the axis"
            f" that carries it (race comes from 'name', gender from 'gender' and 'name')"
        )
    return axes


def _packed_split(raw: tuple[list[str], list[int], dict[str, list[str]], int],
                  encoded: Sequence[Any], width: int, tok: Any) -> Split:
    """A generated split (texts, labels, group columns) with its token ids packed to
    ``width``."""
    texts, labels, groups, _ = raw
    ids, mask = pack(encoded, width, tok.pad_id, tok.cls_id)
    return Split(ids, mask, torch.tensor(labels, dtype=torch.long), texts=texts, groups=groups)


@register_task("bias_sentiment")
def load_bias_sentiment(
    *,
    n_train: int = 4000,
    n_val: int = 500,
    n_test: int = 1000,
    bias_axis: str = "gender",
    bias_group: str = "female",
    strength: float = 0.0,
    mechanism: str = "label_flip",
    bias_validation: bool = True,
    axes: Sequence[str] = AXES,
    tokenizer: str = "word",
    vocab_size: int = 8000,
    max_len: int | None = None,
    seed: int = 0,
) -> TaskData:
    """The planted-bias sentiment corpus (see module doc); binary labels, 1 = positive.

    ``tokenizer="word"`` (default) has every lexicon word in its vocabulary, so counterfactual
    swaps and probe sentences encode without unknown tokens; ``max_len=None`` fits the longest.
    """
    task = "bias_sentiment"
    strength, axes = _check_arguments(
        n_train=n_train, n_val=n_val, n_test=n_test, seed=seed, strength=strength,
        mechanism=mechanism, axes=axes, bias_axis=bias_axis, bias_group=bias_group,
        tokenizer=tokenizer, max_len=max_len)
    common = {"bias_axis": bias_axis, "bias_group": bias_group, "strength": strength,
              "mechanism": mechanism, "axes": axes}
    plan = {
        "train": (n_train, {"biased": True}),
        "validation": (n_val, {"biased": bias_validation}),
        "test": (n_test, {"biased": False, "balanced": True}),
    }
    raw = {split: generate_bias_corpus(count, seed=derive_seed(seed, task, split), **common,
                                       **flags)  # type: ignore[arg-type]
           for split, (count, flags) in plan.items()}
    tok = build_tokenizer(tokenizer, raw["train"][0], vocab_size=vocab_size,
                          extra_tokens=lexicon_tokens() if tokenizer == "word" else (),
                          where=task)
    encoded = {s: tok.encode_many(raw[s][0]) for s in plan}
    longest = max((len(e) for seqs in encoded.values() for e in seqs), default=0) + 1
    width = max(longest, 2) if max_len is None else max_len
    splits = {split: _packed_split(raw[split], encoded[split], width, tok) for split in plan}
    info = {
        "generator": "templated sentiment corpus with a planted group-label association",
        "params": {"n_train": n_train, "n_val": n_val, "n_test": n_test, **common,
                   "axes": list(axes), "bias_validation": bias_validation,
                   "tokenizer": tokenizer, "seed": seed},
        "formula": "P(label=positive | bias group) = 0.5 * (1 - strength) in train"
        + (" and validation" if bias_validation else "")
        + "; 0.5 otherwise; test balanced",
        "expected_p_pos_bias_group": 0.5 * (1 - strength),
        "flipped_labels": {s: raw[s][3] for s in plan},
        "association": {s: _association(raw[s][1], raw[s][2], bias_axis, bias_group) for s in plan},
        "sizes": {s: len(splits[s]) for s in plan},
        "max_len": width,
        "truncated": {s: int(sum(len(e) + 1 > width for e in encoded[s])) for s in plan},
    }
    return TaskData(
        name=task,
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        num_classes=2,
        vocab_size=int(tok.vocab_size),
        pad_id=int(tok.pad_id),
        max_len=width,
        label_names=list(LABEL_NAMES),
        tokenizer=tok,
        info=info,
    )
