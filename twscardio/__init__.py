"""twscardio: cardiac monitoring from earbud IMUs (TWSCardio): in-ear BCG, enhancement of lossy
low-rate streams, motion-robust multi-axis fusion and BCG-to-SCG reconstruction, in real time.

Not implemented yet: this package is a placeholder and exposes nothing.
"""
