"""Maintenance tools for twscardio, apart from the library:

- `python -m twscardio.experiments.ship_weights [--full]`: train (or take from the cache) the
  bench's `--quick` (with `--full`: the full bench's) network arms and copy their weights into
  `twscardio/weights/`, where `twscardio.train.get_model` finds them on a fresh checkout.
- `python -m twscardio.experiments.network_data`: the network arms scored on validation
  subjects per training-data setting (the full bench's 6144 x 10 s, the quick 1536 x 10 s,
  any `--variant`, e.g. the former full setting 96 x 60 s).
- `python -m twscardio.experiments.polarity_check`: share of subjects whose fused-BCG sign
  each sign rule (skewness, first lobe) gets right, per simulator family.
- `python -m twscardio.experiments.scg_references`: what limits the SCG's per-beat r
  (network, oracle re-timing, template references, arm e) on validation subjects.
- `python -m twscardio.experiments.sqi_operating_point`: the SQI threshold, chosen on
  validation subjects (clean vs heartbeat-free window rejection per threshold).
- `python -m twscardio.experiments.fusion_fallback`: when a recording is re-fused on its own
  beats (`FusionConfig.refit_below_sqi`, `refit_max_rotating`), chosen on validation subjects.
- `python -m twscardio.experiments.beat_timing`: arm (b)'s IBI error per scored pair of beats,
  by class (SQI-rejected, octave, wrong beat, loss burst, jitter), on validation subjects or
  (`--family out`) the bench's out-of-family recordings.
- `python -m twscardio.experiments.tracker_gaps`: the rhythm tracker's scores on delivered
  samples only (`pipeline.J_SCORE_SHARE`), chosen on validation subjects.
"""
