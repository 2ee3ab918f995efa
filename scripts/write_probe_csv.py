"""Write an example probe CSV in the Equity Evaluation Corpus layout from the package lexicons.

    python scripts/write_probe_csv.py probe.csv [--names-per-group 3]

Columns: Sentence, Template, Person, Gender, Race (empty for noun phrases and pronouns, as in EEC),
Emotion, Emotion word, Label (positive/negative). The templates, names and emotion words are the
project's (``harness/data/lexicons``), not EEC's; with 3 names per gender and race the file has
8,800 sentences. Audit a model with it:

    harness run bias --data-files train=train.tsv,test=dev.tsv --probe-files probe.csv \
        --probe-text-column Sentence --group-columns Gender,Race \
        --pair-columns "Template,Emotion word" --probe-label-column Label
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from harness.data import build_probe

COLUMNS = ["Sentence", "Template", "Person", "Gender", "Race", "Emotion", "Emotion word", "Label"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the CSV file to write")
    parser.add_argument("--names-per-group", type=int, default=3,
                        help="first names per gender and race (default 3)")
    args = parser.parse_args()
    if args.names_per_group < 1:
        parser.error("--names-per-group must be >= 1")
    rows = []
    for r in build_probe(axes=["gender", "name"]):
        if r.axis == "name" and r.pair_id >= args.names_per_group:
            continue
        rows.append({"Sentence": r.text, "Template": r.template_id, "Person": r.term,
                     "Gender": r.gender, "Race": "" if r.race == "none" else r.race,
                     "Emotion": r.emotion, "Emotion word": r.emotion_word, "Label": r.polarity})
    with args.out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} probe sentences to {args.out}")


if __name__ == "__main__":
    main()
