"""Probes of the CrossLM bench (not part of the library API)."""
