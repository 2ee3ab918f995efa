"""Counterfactual term swaps: replace identity terms by their counterparts in another group.

Swaps (see :func:`list_swaps` and :func:`swap_directions`):

* ``gender`` - gendered words from ``lexicons/gender_pairs.tsv`` (he/she, man/woman, father/mother,
  ...), ``male->female`` or ``female->male``.
* ``names_gender`` - first names from ``lexicons/first_names.tsv``: the i-th male name of a race
  block <-> the i-th female name of the same block.
* ``names_race`` - the i-th name of one race block -> the i-th name of another, same gender; the
  directions are all ordered pairs of races, e.g. ``white->black``.

Matching is whole-word and case-insensitive; the replacement copies the case pattern of the
original (``He`` -> ``She``, ``HIS`` -> ``HER``). One pass over the text, so nothing is swapped
twice.

Ambiguous pronouns, resolved by the next word: ``her`` becomes ``his`` when a content word follows
("her car" -> "his car") and ``him`` otherwise ("saw her .", "gave her the book", "made her
laugh" -> "him" because common bare verbs count as not-content); ``his`` becomes ``her`` before a
content word and ``hers`` otherwise ("the book is his" -> "hers"). ``him`` -> ``her``,
``hers`` -> ``his``. It is a heuristic: unusual syntax can still pick the wrong form.
"""

from __future__ import annotations

import re
from functools import cache
from itertools import permutations

from harness.data.terms import read_lexicon

__all__ = ["list_swaps", "swap", "swap_directions", "swap_map", "swap_texts"]

# words after which "her"/"his" is an object / standalone pronoun rather than a determiner
_NOT_CONTENT = frozenset(
    (
        "a",
        "an",
        "the",
        "this",
        "that",
        "these",
        "those",
        "and",
        "or",
        "but",
        "nor",
        "so",
        "yet",
        "is",
        "was",
        "are",
        "were",
        "be",
        "been",
        "being",
        "am",
        "to",
        "too",
        "as",
        "than",
        "in",
        "on",
        "at",
        "of",
        "for",
        "with",
        "by",
        "from",
        "into",
        "onto",
        "about",
        "over",
        "under",
        "after",
        "before",
        "since",
        "until",
        "up",
        "down",
        "out",
        "off",
        "again",
        "also",
        "not",
        "no",
        "if",
        "when",
        "while",
        "because",
        "though",
        "who",
        "whom",
        "whose",
        "which",
        "what",
        "where",
        "why",
        "how",
        "all",
        "both",
        "each",
        "some",
        "any",
        "very",
        "just",
        "only",
        "even",
        "still",
        "then",
        "there",
        "here",
        "go",
        "do",
        "get",
        "make",
        "feel",
        "laugh",
        "cry",
        "say",
        "see",
        "know",
        "come",
        "leave",
        "stay",
        "look",
        "think",
        "take",
        "win",
        "lose",
        "die",
        "live",
        "smile",
        "talk",
        "sing",
        "dance",
        "fall",
        "run",
        "walk",
        "work",
        "find",
        "try",
        "seem",
        "tell",
        "give",
        "help",
        "want",
        "need",
        "i",
        "you",
        "he",
        "she",
        "it",
        "we",
        "they",
        "me",
        "him",
        "her",
        "us",
        "them",
        "my",
        "your",
        "his",
        "its",
        "our",
        "their",
    )
)


def _races_and_blocks() -> tuple[list[str], dict[tuple[str, str], list[str]]]:
    blocks: dict[tuple[str, str], list[str]] = {}
    for row in read_lexicon("first_names.tsv"):
        blocks.setdefault((row["race"], row["gender"]), []).append(row["name"])
    races = sorted({race for race, _ in blocks})
    for race in races:
        sizes = {len(blocks.get((race, g), [])) for g in ("female", "male")}
        if len(sizes) != 1:
            raise ValueError(
                f"first_names.tsv: race {race!r} needs equally many female and male names"
            )
    if len({len(v) for v in blocks.values()}) != 1:
        raise ValueError(
            "first_names.tsv: every (race, gender) block needs the same number of names"
        )
    return races, blocks


def list_swaps() -> list[str]:
    """Names of the available swaps."""
    return ["gender", "names_gender", "names_race"]


def swap_directions(swap_name: str) -> list[str]:
    """Valid directions of ``swap_name``, e.g. ``["male->female", "female->male"]``."""
    if swap_name in ("gender", "names_gender"):
        return ["male->female", "female->male"]
    if swap_name == "names_race":
        races, _ = _races_and_blocks()
        return [f"{a}->{b}" for a, b in permutations(races, 2)]
    raise ValueError(f"unknown swap {swap_name!r}; available: {', '.join(list_swaps())}")


@cache
def swap_map(swap_name: str, direction: str) -> dict[str, str]:
    """The lowercase word -> replacement table of one swap direction (pronoun rules aside)."""
    valid = swap_directions(swap_name)
    if direction not in valid:
        raise ValueError(
            f"unknown direction {direction!r} for swap {swap_name!r}; valid: {', '.join(valid)}"
        )
    source, target = direction.split("->")
    table: dict[str, str] = {}
    if swap_name == "gender":
        for row in read_lexicon("gender_pairs.tsv"):
            key, value = row[source].lower(), row[target].lower()
            if key in table:
                raise ValueError(f"gender_pairs.tsv: {key!r} appears twice in column {source!r}")
            table[key] = value
        if source == "male":
            table.update({"him": "her", "his": "her"})  # "his" refined by context
        else:
            table.update({"her": "his", "hers": "his"})  # "her" refined by context
        return table
    _, blocks = _races_and_blocks()
    if swap_name == "names_gender":
        pairs = [
            (blocks[(race, source)], blocks[(race, target)]) for race, g in blocks if g == source
        ]
    else:
        pairs = [(blocks[(source, g)], blocks[(target, g)]) for g in ("female", "male")]
    for names_from, names_to in pairs:
        for a, b in zip(names_from, names_to, strict=True):
            table[a.lower()] = b
    return table


@cache
def _pattern(swap_name: str, direction: str) -> re.Pattern[str]:
    words = sorted(swap_map(swap_name, direction), key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b", re.IGNORECASE)


# ambiguous source word -> (form before a content word, form otherwise)
_AMBIGUOUS = {"her": ("his", "him"), "his": ("her", "hers")}
_NEXT_WORD = re.compile(r"\s*([A-Za-z]+)")


def _match_case(original: str, replacement: str) -> str:
    if len(original) > 1 and original.isupper():
        return replacement.upper()
    if original[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    if original.islower():
        return replacement.lower()
    return replacement


def swap(text: str, swap_name: str, direction: str) -> tuple[str, bool]:
    """``text`` with the terms of ``swap_name`` swapped in ``direction``, and whether any changed.

    >>> swap("He said his film was great.", "gender", "male->female")
    ('She said her film was great.', True)
    """
    if not isinstance(text, str):
        raise ValueError(f"swap expects a str, got {type(text).__name__}")
    table = swap_map(swap_name, direction)
    pattern = _pattern(swap_name, direction)
    changed = False

    def replace(match: re.Match[str]) -> str:
        nonlocal changed
        word = match.group(0)
        low = word.lower()
        target = table[low]
        if swap_name == "gender" and low in ("her", "his"):
            following = _NEXT_WORD.match(text, match.end())
            content = following is not None and following.group(1).lower() not in _NOT_CONTENT
            determiner, pronoun = _AMBIGUOUS[low]
            target = determiner if content else pronoun
        changed = changed or target.lower() != low
        return _match_case(word, target)

    return pattern.sub(replace, text), changed


def swap_texts(texts: list[str], swap_name: str, direction: str) -> tuple[list[str], list[bool]]:
    """:func:`swap` over a list: (swapped texts, changed flags)."""
    results = [swap(t, swap_name, direction) for t in texts]
    return [r[0] for r in results], [r[1] for r in results]
