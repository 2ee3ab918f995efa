"""Adapters from the harness attention contract to other libraries (transformers)."""
