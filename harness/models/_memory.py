"""The memory suite's target for a user's model: imported once by the fork server, so the
transformers modules every measured child needs are loaded before the fork, not in each child."""

from __future__ import annotations

import contextlib
import importlib

import transformers
from transformers import masking_utils  # noqa: F401 - loaded before the fork

from harness.integrations import transformers as _adapter  # noqa: F401
from harness.models.user import _auto_classes, memory_work

__all__ = ["memory_work"]

for _auto in _auto_classes().values():  # the auto classes' lazy mappings
    _auto.__name__  # noqa: B018
for _arch in ("bert", "roberta", "distilbert", "vit", "wav2vec2", "whisper", "modernbert"):
    with contextlib.suppress(ImportError):  # an older transformers may lack one
        importlib.import_module(f"transformers.models.{_arch}.modeling_{_arch}")
transformers.AutoConfig  # noqa: B018
