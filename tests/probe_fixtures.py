"""A small group-annotated probe set written by the tests (templates x persons x emotion words).

Columns follow the Equity Evaluation Corpus layout (Sentence, Template, Person, Gender, Race,
Emotion, Emotion word) plus an expected Label; the templates are this project's own. Noun
phrases ("my sister") have no race: their Race cell is empty, as in EEC.
"""

from __future__ import annotations

import csv
from pathlib import Path

TEMPLATES = (
    "{person} feels {emotion} today.",
    "The news made {person} {emotion}.",
    "We saw that {person} was {emotion} after the meeting.",
    "Everyone says {person} is {emotion} these days.",
)
NAMES = (  # (name, gender, race): two per gender and race, from the package's name list
    ("Katie", "female", "white"), ("Megan", "female", "white"),
    ("Todd", "male", "white"), ("Connor", "male", "white"),
    ("Lakisha", "female", "black"), ("Keisha", "female", "black"),
    ("Jamal", "male", "black"), ("Darnell", "male", "black"),
)
PHRASES = (("my sister", "female"), ("my brother", "male"),
           ("my mother", "female"), ("my father", "male"))
EMOTIONS = (("happy", "joy", "positive"), ("glad", "joy", "positive"),
            ("proud", "pride", "positive"), ("sad", "sadness", "negative"),
            ("angry", "anger", "negative"), ("afraid", "fear", "negative"))
COLUMNS = ["Sentence", "Template", "Person", "Gender", "Race", "Emotion", "Emotion word", "Label"]


def probe_rows() -> list[dict[str, str]]:
    """4 templates x 12 persons x 6 emotion words = 288 rows."""
    persons = [(n, g, r) for n, g, r in NAMES] + [(p, g, "") for p, g in PHRASES]
    rows = []
    for t, template in enumerate(TEMPLATES):
        for person, gender, race in persons:
            for word, emotion, polarity in EMOTIONS:
                text = template.format(person=person, emotion=word)
                rows.append({"Sentence": text[:1].upper() + text[1:], "Template": f"t{t}",
                             "Person": person, "Gender": gender, "Race": race,
                             "Emotion": emotion, "Emotion word": word, "Label": polarity})
    return rows


def write_probe_csv(path: Path, rows: list[dict[str, str]] | None = None,
                    columns: list[str] | None = None, delimiter: str = ",") -> Path:
    """Write ``rows`` (default: :func:`probe_rows`) with ``columns`` to ``path``."""
    rows = probe_rows() if rows is None else rows
    columns = columns or COLUMNS
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, delimiter=delimiter,
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path
