"""Template probe: counts, pairing across groups, filters."""

from __future__ import annotations

from collections import defaultdict

import pytest

from harness.data import build_probe
from harness.data.templates import probe_templates
from harness.data.terms import person_terms, read_lexicon


def test_counts() -> None:
    n_templates = len(probe_templates())
    n_words = len(read_lexicon("emotion_words.tsv"))
    assert n_templates >= 8 and n_words >= 10
    for axis in ("gender", "name", "religion", "nationality"):
        rows = build_probe((axis,))
        assert len(rows) == n_templates * n_words * len(person_terms(axis))
    assert len(build_probe()) == n_templates * n_words * (20 + 64)
    assert len(build_probe(("gender",), templates=["p01", "p03"], polarity="negative")) == (
        2 * (n_words // 2) * 20
    )


def test_pairs_differ_only_in_person_phrase() -> None:
    rows = build_probe(("gender",))
    pairs: dict[tuple, dict[str, object]] = defaultdict(dict)
    for row in rows:
        pairs[row.pair_key][row.group] = row
    forms = {t.subject: (t.subject, t.object) for t in person_terms("gender")}

    def masked(row) -> str:
        text = f" {row.text.lower()} "
        for form in sorted(set(forms[row.term]), key=len, reverse=True):
            text = text.replace(f" {form} ", " X ")
        return text

    for key, by_group in pairs.items():
        assert set(by_group) == {"female", "male"}, key
        female, male = by_group["female"], by_group["male"]
        assert female.label == male.label and female.emotion_word in female.text
        assert masked(female) == masked(male) and "X" in masked(female)
    she = next(r for r in rows if r.template_id == "p03" and r.term == "she")
    assert she.text == f"The news left her {she.emotion_word}."
    assert next(r for r in rows if r.template_id == "p01" and r.term == "he").text.startswith("He ")


def test_names_rows_and_labels() -> None:
    rows = build_probe(("name",), templates=["p05"])
    races = {r.race for r in rows}
    assert races == {"white", "black", "hispanic", "asian"}
    assert all(r.group == r.race and r.gender in ("female", "male") for r in rows)
    assert all(r.label == (r.polarity == "positive") for r in rows)
    assert all("{" not in r.text and r.text[0].isupper() for r in rows)
    # same (template, word, pair_id) across the 8 race x gender blocks
    keys = defaultdict(set)
    for r in rows:
        keys[r.pair_key].add((r.race, r.gender))
    assert all(len(v) == 8 for v in keys.values())


def test_errors() -> None:
    with pytest.raises(ValueError, match="unknown axes"):
        build_probe(("age",))
    with pytest.raises(ValueError, match="unknown template ids"):
        build_probe(templates=["zz"])
    with pytest.raises(ValueError, match="polarity"):
        build_probe(polarity="neutral")
