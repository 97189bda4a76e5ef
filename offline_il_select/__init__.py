"""offline_il_select: offline imitation learning from imperfect demonstrations by resultant-state
data selection and weighted behaviour cloning (ILID, ICML 2024).

Not implemented yet: this package is a placeholder and exposes nothing.
"""
