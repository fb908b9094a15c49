"""Samplers (filled by issue 4)."""
