"""Package lexicons (``harness/data/lexicons/*.tsv``) and the person phrases built from them.

Axes of identity terms: ``gender`` (pronouns and gendered noun phrases), ``name`` (first names,
carrying perceived gender and race), ``religion`` and ``nationality`` (adjectives inside neutral
carrier phrases such as "my Muslim neighbor"), and ``none`` (neutral phrases, a control).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

__all__ = [
    "ATTRIBUTES",
    "AXES",
    "CARRIERS",
    "PersonTerm",
    "axis_groups",
    "person_terms",
    "read_lexicon",
]

AXES = ("gender", "name", "religion", "nationality", "none")
ATTRIBUTES = ("gender", "race", "religion", "nationality")
CARRIERS = ("my {} neighbor", "my {} coworker", "the {} teacher", "my {} friend")


@cache
def read_lexicon(filename: str) -> tuple[dict[str, str], ...]:
    """Rows of a lexicon TSV as dicts keyed by its header (``#`` lines skipped)."""
    resource = resources.files("harness.data").joinpath("lexicons", filename)
    if not resource.is_file():
        raise ValueError(f"lexicon {filename!r} is not in harness/data/lexicons/")
    lines = [
        line.rstrip("\n\r")
        for line in resource.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    header = lines[0].split("\t")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        cells = [c.strip() for c in line.split("\t")]
        if len(cells) != len(header):
            raise ValueError(
                f"lexicon {filename}: data line {number} has {len(cells)} cells, header has"
                f" {len(header)}"
            )
        rows.append(dict(zip(header, cells, strict=True)))
    return tuple(rows)


@dataclass(frozen=True)
class PersonTerm:
    """A phrase that refers to a person, with its subject/object forms and group attributes.

    ``pair_id`` aligns counterparts across groups of one axis (e.g. "my sister"/"my brother",
    the i-th name of each block), so paired comparisons can match them.
    """

    subject: str
    object: str
    axis: str
    group: str
    pair_id: int
    gender: str = "none"
    race: str = "none"
    religion: str = "none"
    nationality: str = "none"

    def attributes(self) -> dict[str, str]:
        """The four demographic attributes ("none" where the term has none)."""
        return {a: getattr(self, a) for a in ATTRIBUTES}


@cache
def person_terms(axis: str) -> tuple[PersonTerm, ...]:
    """All person phrases of ``axis`` (one of :data:`AXES`)."""
    if axis not in AXES:
        raise ValueError(f"unknown axis {axis!r}; choose one of {', '.join(AXES)}")
    terms: list[PersonTerm] = []
    if axis in ("gender", "none"):
        for row in read_lexicon("person_terms.tsv"):
            if row["axis"] == axis:
                gender = row["group"] if axis == "gender" else "none"
                terms.append(
                    PersonTerm(
                        row["subject"],
                        row["object"],
                        axis,
                        row["group"],
                        int(row["pair_id"]),
                        gender=gender,
                    )
                )
    elif axis == "name":
        counters: dict[tuple[str, str], int] = {}
        for row in read_lexicon("first_names.tsv"):
            block = (row["race"], row["gender"])
            index = counters.get(block, 0)
            counters[block] = index + 1
            terms.append(
                PersonTerm(
                    row["name"],
                    row["name"],
                    axis,
                    row["race"],
                    index,
                    gender=row["gender"],
                    race=row["race"],
                )
            )
    else:
        for row in read_lexicon("identity_terms.tsv"):
            if row["axis"] != axis:
                continue
            for pair_id, carrier in enumerate(CARRIERS):
                phrase = carrier.format(row["term"])
                terms.append(
                    PersonTerm(phrase, phrase, axis, row["group"], pair_id, **{axis: row["group"]})
                )
    return tuple(terms)


def axis_groups(attribute: str) -> list[str]:
    """The groups of a demographic attribute (gender, race, religion, nationality), sorted."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r}; choose one of {', '.join(ATTRIBUTES)}")
    found = {getattr(term, attribute) for axis in AXES for term in person_terms(axis)}
    return sorted(found - {"none"})
