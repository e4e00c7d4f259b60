"""Counting engines: hf (the reference), fast (numba), their choice and the parity guard."""
