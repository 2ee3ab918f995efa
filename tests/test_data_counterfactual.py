"""Counterfactual swaps: both directions, case, word boundaries, names, real SST-2 sentences."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.data import list_swaps, swap, swap_directions
from harness.data.counterfactual import swap_map, swap_texts
from harness.data.terms import read_lexicon

SST2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"


def test_swap_lists() -> None:
    assert list_swaps() == ["gender", "names_gender", "names_race"]
    assert swap_directions("gender") == ["male->female", "female->male"]
    assert "white->black" in swap_directions("names_race")
    assert "black->white" in swap_directions("names_race")
    assert len(swap_directions("names_race")) == 12  # 4 races, ordered pairs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("He loved it.", "She loved it."),
        ("HE LOVED IT", "SHE LOVED IT"),
        ("the man and his dog", "the woman and her dog"),
        ("the book is his .", "the book is hers ."),
        ("we told him so", "we told her so"),
        ("My Father-in-law", "My Mother-in-law"),
        ("he 's the king of comedy", "she 's the queen of comedy"),
        ("Mr. Smith and himself", "Ms. Smith and herself"),
    ],
)
def test_gender_male_to_female(text: str, expected: str) -> None:
    assert swap(text, "gender", "male->female") == (expected, True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("She loved her car.", "He loved his car."),
        ("we saw her .", "we saw him ."),
        ("gave her the book", "gave him the book"),
        ("made her laugh", "made him laugh"),
        ("Her own mother", "His own father"),
        ("that seat is hers", "that seat is his"),
        ("the Actress and the Queen", "the Actor and the King"),
    ],
)
def test_gender_female_to_male(text: str, expected: str) -> None:
    assert swap(text, "gender", "female->male") == (expected, True)


def test_word_boundaries_and_no_change() -> None:
    text = "the shepherd manages the humane theme of hers-less"  # no whole-word terms but 'hers'
    out, changed = swap("the shepherd manages a humane theme", "gender", "female->male")
    assert (out, changed) == ("the shepherd manages a humane theme", False)
    assert swap(text, "gender", "male->female") == (text, False)


def test_round_trip_on_unambiguous_words() -> None:
    text = "My brother, his son and the King met a waiter."
    there, _ = swap(text, "gender", "male->female")
    assert there == "My sister, her daughter and the Queen met a waitress."
    assert swap(there, "gender", "female->male") == (text, True)


def test_names() -> None:
    assert swap("Todd met DeShawn", "names_gender", "male->female") == ("Katie met Lakisha", True)
    assert swap("todd", "names_race", "white->black") == ("deshawn", True)
    assert swap("KATIE", "names_race", "white->asian") == ("YUKI", True)
    assert swap("Lakisha", "names_race", "black->hispanic") == ("Guadalupe", True)
    table = swap_map("names_race", "white->black")
    names = {r["name"].lower(): r for r in read_lexicon("first_names.tsv")}
    for source, target in table.items():
        assert names[source]["race"] == "white" and names[target.lower()]["race"] == "black"
        assert names[source]["gender"] == names[target.lower()]["gender"]


def test_gender_pairs_are_one_to_one() -> None:
    rows = read_lexicon("gender_pairs.tsv")
    for column in ("male", "female"):
        words = [r[column].lower() for r in rows]
        assert len(words) == len(set(words)), column


def test_errors() -> None:
    with pytest.raises(ValueError, match="available: gender, names_gender, names_race"):
        swap("x", "religion", "a->b")
    with pytest.raises(ValueError, match="valid: male->female, female->male"):
        swap("x", "gender", "men->women")
    with pytest.raises(ValueError, match="expects a str"):
        swap(None, "gender", "male->female")  # type: ignore[arg-type]


def test_real_sst2_sentences() -> None:
    path = SST2 / "dev.tsv"
    if not path.is_file():
        pytest.skip("shared SST-2 data (../shared/data/sst2) is absent")
    sentences = [line.split("\t")[0] for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    for direction in ("male->female", "female->male"):
        swapped, changed = swap_texts(sentences, "gender", direction)
        assert sum(changed) >= 10, direction
        for before, after, flag in zip(sentences, swapped, changed, strict=True):
            assert (before != after) == flag
            assert len(before.split()) == len(after.split())  # word for word
    swapped, _ = swap_texts(sentences, "gender", "male->female")
    index = next(i for i, s in enumerate(sentences) if " he " in f" {s} ")
    assert " she " in f" {swapped[index]} "
