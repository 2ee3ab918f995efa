"""Profiles (``*.yaml``): installed with the package as ``harness.profiles``."""
