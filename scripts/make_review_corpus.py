"""Build a two-domain, multi-line review corpus from SST-2's sentences (offline).

SST-2 holds single movie-review sentences. This script groups them into long reviews (each review
joins 12-30 sentences of one label, one sentence per line, so every review is quoted across
several lines in the TSV; no sentence is used twice) and splits them into two sub-domains by what
the sentences talk about:

* ``story``: sentences about anything but the performers (plot, script, direction, pacing);
* ``performances``: sentences mentioning actors, acting, the cast, a role or a star.

Training on one domain's file and testing on the other's is a cross-domain run on long,
multi-line inputs: ``python scripts/make_review_corpus.py SST2_DIR OUT_DIR`` writes
``OUT_DIR/story.tsv`` (up to 600 reviews) and ``OUT_DIR/performances.tsv`` (as many balanced
reviews as its sentences allow, about 80), header ``sentence<TAB>label``.
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

import numpy as np

PERFORMANCE = re.compile(r"\b(actor|actors|actress|acting|performance|performances|cast|"
                         r"role|roles|plays|played|star|stars|starring)\b")


def build(sst2_dir: Path, out_dir: Path, seed: int = 0, per_domain: int = 600) -> dict:
    """Write the two domain files; returns reviews and sentences per domain."""
    rows: list[tuple[str, int]] = []
    with open(sst2_dir / "train_full.tsv", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        rows = [(s.strip(), int(y)) for s, y in reader if len(s.split()) >= 6]
    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for domain in ("performances", "story"):
        pool = {y: [s for s, lab in rows if lab == y
                    and bool(PERFORMANCE.search(s)) == (domain == "performances")]
                for y in (0, 1)}
        reviews = []
        for label in (0, 1):
            left = list(rng.permutation(len(pool[label])))
            for _ in range(per_domain // 2):
                k = int(rng.integers(12, 31))
                if len(left) < k:
                    break
                picks, left = left[:k], left[k:]
                reviews.append(("\n".join(pool[label][j] for j in picks), label))
        per_label = min(sum(y == 0 for _, y in reviews), sum(y == 1 for _, y in reviews))
        reviews = [r for y in (0, 1) for r in [x for x in reviews if x[1] == y][:per_label]]
        order = rng.permutation(len(reviews))
        with open(out_dir / f"{domain}.tsv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
            writer.writerow(["sentence", "label"])
            writer.writerows(reviews[j] for j in order)
        counts[domain] = {"reviews": len(reviews),
                          "sentences": {y: len(v) for y, v in pool.items()}}
    return counts


if __name__ == "__main__":
    print(build(Path(sys.argv[1]), Path(sys.argv[2])))
