"""Tasks for the harness: seeded generators and real datasets (text, images, audio).

>>> from harness.data import list_tasks, load_task
>>> task = load_task("listops", n_train=100, n_val=10, n_test=10)
>>> task.train.input_ids.shape[1] == task.max_len
True

Every sequence starts with a CLS token and is right-padded with ``pad_id``; see :class:`Split` and
:class:`TaskData`. Bias tooling: :mod:`harness.data.counterfactual` (term swaps) and
:mod:`harness.data.templates` (template probe).
"""

from harness.data import bias as _bias  # noqa: F401  (registers "bias_sentiment")
from harness.data import folders as _folders  # noqa: F401  (registers "media")
from harness.data import images as _images  # noqa: F401  (registers "digits")
from harness.data import listops as _listops  # noqa: F401  (registers "listops")
from harness.data import pathfinder as _pathfinder  # noqa: F401  (registers "pathfinder")
from harness.data import recall as _recall  # noqa: F401  (registers "recall")
from harness.data import speech as _speech  # noqa: F401  (registers "speech")
from harness.data import text as _text  # noqa: F401  (registers "text")
from harness.data.base import Split, TaskData, TaskUnavailable, Tokenizer, derive_seed
from harness.data.counterfactual import list_swaps, swap, swap_directions, swap_texts
from harness.data.listops import evaluate_listops
from harness.data.modality import MODALITIES, declare_modality, task_modality
from harness.data.registry import list_tasks, load_task, register_task, task_options
from harness.data.templates import ProbeRow, build_probe
from harness.data.tokenization import (
    ByteTokenizer,
    SubwordTokenizer,
    WordTokenizer,
    load_tokenizer,
)

__all__ = [
    "MODALITIES",
    "ByteTokenizer",
    "ProbeRow",
    "Split",
    "SubwordTokenizer",
    "TaskData",
    "TaskUnavailable",
    "Tokenizer",
    "WordTokenizer",
    "build_probe",
    "declare_modality",
    "derive_seed",
    "evaluate_listops",
    "list_swaps",
    "list_tasks",
    "load_task",
    "load_tokenizer",
    "register_task",
    "swap",
    "swap_directions",
    "swap_texts",
    "task_modality",
    "task_options",
]
