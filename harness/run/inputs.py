"""Every input of a run checked before its run directory exists (the CLI's exit 2).

* local text data (:func:`harness.data.text.check_text_data`): files, columns, labels, sizes;
  the rows read per split go to run.json ``inputs.text``;
* a local image/audio folder (:func:`harness.data.folders.check_media_folder`): layout, classes,
  every file readable, sizes; skipped files (``data.skip_bad_files``) go to ``inputs.media``;
* the bias suite's probe set: read and validated, and its labels checked against the classes of
  the models that will score it (the planted corpus's, and the text data's when it trains).
"""

from __future__ import annotations

from typing import Any

from harness.run.profiles import Profile

__all__ = ["check_inputs"]


def check_inputs(profile: Profile, suites: list[str]) -> dict[str, Any]:
    """Check the run's data and probe files (module doc); ``ValueError`` names the problem.
    Returns what was checked, for run.json's ``inputs``."""
    out: dict[str, Any] = {}
    data = profile.data
    text = None
    if data.data_files:
        from harness.data.text import check_text_data

        text = check_text_data(data_files=dict(data.data_files), text_column=data.text_column,
                               label_column=data.label_column)
        out["text"] = {"rows_read": text["rows_read"], "sizes": text["sizes"],
                       "label_names": [str(n) for n in text["label_names"]]}
    accuracy = profile.suites.get("accuracy") if "accuracy" in suites else None
    if data.data_dir and getattr(accuracy, "media", None) is not None:
        from harness.data.folders import check_media_folder

        out["media"] = check_media_folder(data.data_dir, str(data.data_format),
                                          skip_bad_files=data.skip_bad_files)
    bias = profile.suites.get("bias") if "bias" in suites else None
    probe_params = getattr(bias, "probe_set", None)
    if probe_params is not None:
        out["probe_set"] = _check_probe_set(bias, probe_params, text)
    return out


def _check_probe_set(bias: Any, params: Any, text: dict[str, Any] | None) -> dict[str, Any]:
    from harness.data.bias import LABEL_NAMES
    from harness.data.probes import label_ids

    probe = params.load()
    positive = int(bias.positive_label)
    if probe.labels is not None:
        models = [("the planted bias corpus", list(LABEL_NAMES))]
        if text is not None and bias.text is not None:
            models.append(("the run's text data", [str(n) for n in text["label_names"]]))
        for what, names in models:
            try:
                label_ids(probe, names, len(names), positive=positive,
                          label_map=params.label_map)
            except ValueError as err:
                raise ValueError(f"{err} (the model trained on {what})") from None
    return probe.summary()
