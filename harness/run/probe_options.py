"""Command-line probe-set and prediction options applied to a loaded profile.

``harness run bias --probe-files eec.csv --probe-text-column Sentence --group-columns Gender,Race
--pair-columns Template,"Emotion word"`` sets the profile's ``suites.bias.probe_set``;
``--pair-text-columns sent_more,sent_less`` reads wide-format pairs (CrowS-Pairs style);
``--save-predictions`` its ``predictions.save``. The profile is validated again afterwards, so a
bad value is reported the same way as in a YAML file.
"""

from __future__ import annotations

from typing import Any

from harness.run.profiles import Profile, ProfileError, profile_from_dict

__all__ = ["apply_probe_options", "split_list"]


def split_list(value: str | None) -> list[str] | None:
    """``"A, B,C"`` -> ``["A", "B", "C"]`` (None stays None)."""
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def apply_probe_options(
    profile: Profile,
    *,
    files: str | None = None,
    dataset: str | None = None,
    text_column: str | None = None,
    group_columns: str | None = None,
    pair_columns: str | None = None,
    pair_text_columns: str | None = None,
    label_column: str | None = None,
    empty: str | None = None,
    save_predictions: bool | None = None,
    predictions_format: str | None = None,
) -> Profile:
    """``profile`` with the given options set (those left None keep the profile's values)."""
    probe: dict[str, Any] = {
        "files": split_list(files), "dataset": dataset, "text_column": text_column,
        "group_columns": split_list(group_columns), "pair_columns": split_list(pair_columns),
        "pair_text_columns": split_list(pair_text_columns),
        "label_column": label_column, "empty": empty,
    }
    probe = {k: v for k, v in probe.items() if v is not None}
    prediction = {k: v for k, v in (("save", save_predictions),
                                    ("format", predictions_format)) if v is not None}
    if not probe and not prediction:
        return profile
    data = profile.to_dict()
    source = data.pop("source") or "<profile>"
    if probe:
        if "bias" not in data["suites"]:
            raise ProfileError(f"{source}: --probe-* options need the bias suite, which this"
                               " profile does not define")
        current = dict(data["suites"]["bias"].get("probe_set") or {})
        if "files" in probe or "dataset" in probe:  # a new source replaces the old one
            current.pop("files", None)
            current.pop("dataset", None)
        elif not current:
            raise ProfileError("--probe-text-column/--group-columns/--pair-columns/"
                               "--probe-label-column need a probe set: pass --probe-files"
                               " PATH[,PATH] or --probe-dataset NAME")
        current.update(probe)
        if "group_columns" not in current and not current.get("pair_text_columns"):
            raise ProfileError("--probe-files/--probe-dataset need --group-columns A[,B] (the"
                               " columns holding each sentence's groups), or"
                               " --pair-text-columns A,B for wide-format pairs")
        data["suites"]["bias"]["probe_set"] = current
    if prediction:
        data["predictions"] = {**data.get("predictions", {}), **prediction}
    return profile_from_dict(data, source=source)
