"""bestshot: language-queried highlight-frame localisation in human-centric video (BestShot /
ShotVL on an InternVL-style model, PoseScript-style pose text).

Not implemented yet: this package is a placeholder and exposes nothing.
"""
