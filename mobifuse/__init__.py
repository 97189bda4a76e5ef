"""mobifuse: ToF + stereo RGB depth fusion guided by a physics-based Depth Error Indication (DEI)
modality (MobiFuse).

Not implemented yet: this package is a placeholder and exposes nothing.
"""
