"""Sliding-window attention for attention-harness (an example plugin)."""

from harness_sliding.attention import SlidingWindowAttention

__all__ = ["SlidingWindowAttention"]
__version__ = "0.1.0"
