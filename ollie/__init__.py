"""ollie: offline-to-online imitation learning with an aligned discriminator initialisation
(OLLIE).

Not implemented yet: this package is a placeholder and exposes nothing.
"""
