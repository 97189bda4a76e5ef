"""Plot the two 1M-step ILID curves beside the same seeds' full-bench BC-E and DWBC (100k steps).
Run from the repository root: python results/offline_il_select/cpu_1m/plot.py"""
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

here = Path(__file__).parent
bench = json.load(open("results/offline_il_select/full_100k_six/rows.json"))
ref = {(r["arm"], r["seed"]): r["score"] for r in bench
       if r["setting"] == "halfcheetah-random+1expert"}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
for s, ax in enumerate(axes):
    rows = list(csv.DictReader(open(here / f"seed{s}" / "curve.csv")))
    ax.plot([int(float(r["step"])) / 1e3 for r in rows], [float(r["score"]) for r in rows],
            "o-", ms=3, label="ILID, 1M steps (paper code's budget)")
    for arm, name, ls in (("dwbc", "DWBC", "--"), ("bc_expert", "BC-E", ":"),
                          ("ilid", "ILID", "-.")):
        ax.axhline(ref[(arm, s)], ls=ls, color="k" if arm != "ilid" else "C1",
                   label=f"{name}, full bench 100k (H100)")
    ax.set_title(f"halfcheetah-random+1expert, seed {s}")
    ax.set_xlabel("policy steps (k)")
axes[0].set_ylabel("normalised score")
axes[0].legend(fontsize=7)
fig.tight_layout()
fig.savefig(here / "curves.png", dpi=110)
print("wrote", here / "curves.png")
