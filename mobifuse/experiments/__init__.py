"""Maintenance tools for mobifuse, apart from the library:

- `python -m mobifuse.experiments.ship_weights`: train (or take from the cache) the bench's
  `--quick` fusion nets and copy them into `mobifuse/weights/`, where `mobifuse.bench` finds
  them on a fresh checkout.
"""
