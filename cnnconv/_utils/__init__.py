"""Shared helpers below every other layer: argument checks, atomic writes, optional imports."""
