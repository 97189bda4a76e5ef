"""ripple: on-device LLM inference from flash (Ripple / Neuralink, ASPLOS'25): neuron co-activation
placement (offline) plus access collapsing and linking-aligned caching (online), measured on I/O
latency.

Not implemented yet: this package is a placeholder and exposes nothing.
"""
