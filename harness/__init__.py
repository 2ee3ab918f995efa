"""attention-harness: benchmark and fairness-audit harness for self-attention variants."""

__version__ = "0.1.0"
