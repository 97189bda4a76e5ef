"""Probes and maintenance scripts of bestshot (not part of the library)."""
