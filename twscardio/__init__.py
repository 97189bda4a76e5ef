"""twscardio: cardiac monitoring from earbud IMUs (TWSCardio, arXiv 2501.06744).

In-ear ballistocardiogram (BCG) from the IMUs of true-wireless earbuds, streamed over a lossy,
low-rate Bluetooth link, turned into heart rate, inter-beat intervals and a seismocardiogram
(SCG). Modules, one per paper technique:

* `simulator` - seeded physiological earbud-IMU simulator (rhythm with HRV, ECG, systolic time
  intervals, chest SCG, in-ear BCG through a head response, motion, sensor); `channel` - the
  Gilbert-Elliott bursty Bluetooth loss.
* `enhance` - gap detection from timestamps, validity mask, short-gap interpolation, uniform
  resampling of the irregular stream.
* `fusion` - band-pass, gyro-referenced motion cancellation, per-axis SQI, quality-weighted
  periodic-component fusion across axes and buds, window rejection.
* `models` - the non-autoregressive BCG->SCG network and the region-focused loss.
* `beats` - J-peak / AO / AC detection, HR, IBI, HRV, per-beat Pearson r, timing errors.
* `stream` - the real-time packet-in / HR+SCG-out API.
* `data` - training windows, EarCardio CSV and PhysioNet CEBS (WFDB) loaders.
* `pipeline` - the stages chained (`process`); `train`, `eval`, `bench` - the recipes.
"""
