"""crosslm: mutual enhancement of a server LLM and client SLMs through SLM-guided data generation
(CrossLM).

Not implemented yet: this package is a placeholder and exposes nothing.
"""
