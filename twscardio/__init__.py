"""twscardio: cardiac monitoring from earbud IMUs (TWSCardio, arXiv 2501.06744).

In-ear ballistocardiogram (BCG) from the IMUs of true-wireless earbuds, streamed over a lossy,
low-rate Bluetooth link, turned into heart rate, inter-beat intervals and a seismocardiogram
(SCG). Modules, one per paper technique:

* `simulator` - seeded physiological earbud-IMU simulator (rhythm with HRV, ECG, systolic time
  intervals, chest SCG, in-ear BCG through a head response, motion, sensor; morphology
  "randomised" is the network's training family); `channel` - the Gilbert-Elliott bursty
  Bluetooth loss; `outfamily` - an independent out-of-family test generator (never trained on).
* `enhance` - gap detection from timestamps, validity mask, short-gap interpolation, uniform
  resampling of the irregular stream.
* `fusion` - band-pass, gyro-referenced motion cancellation, per-axis SQI, quality-weighted
  periodic-component fusion across axes and buds, window rejection.
* `models` - the non-autoregressive BCG->SCG network and the region-focused loss.
* `beatsync` - beat-synchronous SCG (arm e): J peaks of the fused BCG, a learned J -> AO timing
  from the recording's median BCG and gyro complexes, the SCG template at the predicted times.
* `beats` - octave-checked beat period, J-peak / AO / AC detection, HR, IBI, HRV, per-beat
  Pearson r, timing and octave errors.
* `quality` - per-window calibrated SQI and "no reliable beat" rejection.
* `stream` - the real-time packet-in / HR+SCG-out API.
* `data` - training windows, EarCardio CSV and PhysioNet CEBS (WFDB) loaders.
* `pipeline` - the stages chained (`process`); `train`, `eval`, `bench` - the recipes.

Example (what a notebook user types; a few seconds): simulate 30 s of a subject at rest through
the default 50 Hz lossy link, run arm (b) (enhancement + multi-axis fusion + J peaks) and score
the beats against the simulator's R peaks.

>>> import dataclasses
>>> from twscardio import TrainConfig, beat_metrics, process, simulate
>>> cfg = TrainConfig()
>>> rec = simulate(dataclasses.replace(cfg.sim, duration_s=30.0), seed=1)
>>> sorted(rec["left"])                       # what an earbud delivers
['acc', 'gyro', 'relative_time']
>>> out = process(rec, cfg, arm="b")
>>> m = beat_metrics(out["beats_s"], rec["truth"])
>>> m["hr_mae"] < 1.0 and m["ibi_mae_ms"] < 20 and m["missed_pct"] < 5
True

>>> out["windows"]["status"][:2]              # per 5-s window: "ok" or "no reliable beat"
['ok', 'ok']

Arms (c), (d) and (e) also reconstruct the SCG: `process(rec, cfg, arm="d", model=model)` with
a network from `python -m twscardio.train`, `process(rec, cfg, arm="e", model=timing)` with
`twscardio.train.get_timing_model(cfg)` (the best in-family SCG; README); `StreamingMonitor`
runs (b)/(d) packet by packet. For HR/IBI use (b), the default: the network arms' beats do not
hold out of family (README).
"""

from twscardio.beats import beat_metrics, beat_period, find_ao, find_jpeaks, per_beat_pearson
from twscardio.beatsync import render_scg, synchronous_scg
from twscardio.config import QualityConfig, SimConfig, TrainConfig
from twscardio.data import load_cebs, load_earcardio
from twscardio.enhance import resample_uniform, validate_stream
from twscardio.fusion import fuse
from twscardio.outfamily import simulate_out_of_family
from twscardio.pipeline import process
from twscardio.quality import NO_BEAT, assess_windows
from twscardio.simulator import simulate
from twscardio.stream import StreamingMonitor

__all__ = ["TrainConfig", "SimConfig", "QualityConfig", "simulate", "simulate_out_of_family",
           "process", "validate_stream", "resample_uniform", "fuse", "beat_period", "find_jpeaks",
           "find_ao", "beat_metrics", "per_beat_pearson", "assess_windows", "NO_BEAT",
           "StreamingMonitor", "load_earcardio", "load_cebs", "synchronous_scg", "render_scg"]
