"""Every stage has a plot; each draws the data it is given."""

import numpy as np

from twscardio.config import ChannelConfig, SimConfig, TrainConfig
from twscardio.fusion import fuse
from twscardio.pipeline import prepare
from twscardio.plot import (
    plot_beats,
    plot_enhancement,
    plot_fusion,
    plot_reconstruction,
    plot_simulation,
)
from twscardio.simulator import simulate


def test_stage_plots(tmp_path):
    rec = simulate(SimConfig(duration_s=12.0, channel=ChannelConfig(loss=0.2)), seed=0)
    prep = prepare(rec, TrainConfig())
    fus = fuse(prep["X"], prep["mask"], prep["fs"], TrainConfig().fusion)
    tr = rec["truth"]
    figs = [plot_simulation(rec), plot_enhancement(prep), plot_fusion(prep, fus),
            plot_beats(fus["fused"], 100.0, tr["ao_s"] + 0.2, tr),
            plot_reconstruction(tr["scg"] + 0.01, tr, tr["ao_s"])]
    for i, f in enumerate(figs):
        assert len(f.axes) >= 1 and any(len(a.lines) for a in f.axes)
        f.savefig(tmp_path / f"{i}.png")
    line = figs[2].axes[2].lines[0]  # the fused-signal panel shows the fused signal
    assert np.allclose(line.get_ydata(), fus["fused"][:len(line.get_ydata())])
