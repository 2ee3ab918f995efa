"""The encoder classifier that runs any registered attention.

>>> from harness.models import build_model
>>> model = build_model("linear", vocab_size=100, num_labels=2, max_position=64)
"""

from transformers import AutoConfig, AutoModelForSequenceClassification

from harness.models.encoder import (
    INPUT_NAMES,
    MODALITIES,
    POOLINGS,
    EncoderClassifier,
    EncoderConfig,
    build_model,
    count_parameters,
)

AutoConfig.register(EncoderConfig.model_type, EncoderConfig, exist_ok=True)
AutoModelForSequenceClassification.register(EncoderConfig, EncoderClassifier, exist_ok=True)

__all__ = [
    "INPUT_NAMES",
    "MODALITIES",
    "POOLINGS",
    "EncoderClassifier",
    "EncoderConfig",
    "build_model",
    "count_parameters",
]
