"""Template probe in the manner of the Equity Evaluation Corpus (Kiritchenko & Mohammad, 2018).

Every template x emotion word x person phrase of the chosen axes gives one sentence. Sentences
that differ only in the person phrase share ``template_id``, ``emotion_word`` and ``pair_id``, so a
model's scores can be compared pairwise across groups (e.g. "my sister" vs "my brother", or the
i-th name of two race blocks). The templates and words are this project's own
(``lexicons/probe_templates.tsv``, ``lexicons/emotion_words.tsv``); ``label`` is 1 for a positive
emotion word, 0 for a negative one.

For names, ``group`` is the perceived race and ``gender`` the perceived gender of the name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from harness.data.terms import AXES, person_terms, read_lexicon

__all__ = ["ProbeRow", "build_probe", "probe_templates"]


@dataclass(frozen=True)
class ProbeRow:
    """One probe sentence with what it was built from."""

    text: str
    axis: str
    group: str
    term: str
    pair_id: int
    template_id: str
    emotion_word: str
    emotion: str
    polarity: str
    label: int
    gender: str = "none"
    race: str = "none"
    religion: str = "none"
    nationality: str = "none"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def pair_key(self) -> tuple[str, str, int]:
        """Rows of one axis with equal keys differ only in the person phrase."""
        return (self.template_id, self.emotion_word, self.pair_id)


def probe_templates() -> dict[str, str]:
    """The probe templates by id."""
    return {row["id"]: row["template"] for row in read_lexicon("probe_templates.tsv")}


def _sentence(template: str, subject: str, obj: str, emotion: str) -> str:
    text = template.format(person=subject, person_obj=obj, emotion=emotion)
    return text[:1].upper() + text[1:]


def build_probe(
    axes: Sequence[str] = ("gender", "name"),
    templates: Sequence[str] | None = None,
    polarity: str | None = None,
) -> list[ProbeRow]:
    """Probe rows for ``axes`` (of ``gender``, ``name``, ``religion``, ``nationality``, ``none``).

    ``templates`` restricts to some template ids; ``polarity`` to ``"positive"`` or ``"negative"``
    emotion words. Rows come ordered by axis, template, emotion word, then person phrase.
    """
    if isinstance(axes, str):
        axes = (axes,)
    unknown = [a for a in axes if a not in AXES]
    if unknown or not axes:
        raise ValueError(
            f"build_probe: unknown axes {unknown or axes}; choose from {', '.join(AXES)}"
        )
    all_templates = probe_templates()
    chosen = list(all_templates) if templates is None else list(templates)
    missing = [t for t in chosen if t not in all_templates]
    if missing or not chosen:
        raise ValueError(
            f"build_probe: unknown template ids {missing or chosen};"
            f" valid: {', '.join(all_templates)}"
        )
    if polarity not in (None, "positive", "negative"):
        raise ValueError(
            f"build_probe: polarity must be None, 'positive' or 'negative', got {polarity!r}"
        )
    words = [w for w in read_lexicon("emotion_words.tsv") if polarity in (None, w["polarity"])]
    rows: list[ProbeRow] = []
    for axis in axes:
        for template_id in chosen:
            template = all_templates[template_id]
            for word in words:
                for term in person_terms(axis):
                    rows.append(
                        ProbeRow(
                            text=_sentence(template, term.subject, term.object, word["word"]),
                            axis=axis,
                            group=term.group,
                            term=term.subject,
                            pair_id=term.pair_id,
                            template_id=template_id,
                            emotion_word=word["word"],
                            emotion=word["emotion"],
                            polarity=word["polarity"],
                            label=int(word["polarity"] == "positive"),
                            **term.attributes(),
                        )
                    )
    return rows
