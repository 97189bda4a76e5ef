"""Maintenance tools for mobifuse, apart from the library:

- `python -m mobifuse.experiments.ship_weights`: train (or take from the cache) the default
  model `fuse()` uses and the bench's `--quick` fusion nets, and copy them into
  `mobifuse/weights/`, where `mobifuse.api` and `mobifuse.bench` find them on a fresh checkout.
- `python -m mobifuse.experiments.calibrate_dei`: fit the DEI calibration factors
  (`DEIConfig.tof_scale`, `st_scale`, and the split `st_hole_scale`) on held-out scenes of the
  bench's training rigs.
- Probes behind the README's findings: `fusion_ceiling` (per-scene oracles, the agreement
  threshold on validation), `stereo_dei_terms` (which stereo evidence misranks),
  `cross_rig_seeds` (the cross-rig net's seed spread and per-pixel losses), `wide_validation`
  (candidate methods for the unseen wide rigs on a validation set of their family, and what
  limits there), `latency`.
"""
