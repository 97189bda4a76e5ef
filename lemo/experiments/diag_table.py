"""Summarise `python -m lemo.experiments.diag_passkey` runs as markdown tables.

usage: python -m lemo.experiments.diag_table results/lemo/diag/*.json

Per run: the evaluations (dense and with elimination at inference) at every length, and for
fine-tuned runs the training loss averaged over step ranges (all windows / passkey windows /
other windows) plus the held-out answer-NLL curve.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def _f(v, nd=3):
    return f"{v:.{nd}f}" if isinstance(v, (int, float)) else str(v)


def summarise(path: Path) -> str:
    d = json.loads(path.read_text())
    lines = [f"### {path.stem}", "", f"`{d['command']}`", ""]
    lines += ["| eval | length | ppl | passkey | answer NLL | needle kept | question kept |",
              "|---|---|---|---|---|---|---|"]
    for name, row in d["eval"].items():
        lens = sorted({k.split("@")[1] for k in row if "@" in k}, key=int)
        for s in lens:
            sel = row.get("selection", {}).get(s, {})
            lines.append(f"| {name} | {s} | {_f(row[f'ppl@{s}'])} | "
                         f"{_f(row[f'passkey@{s}'], 2)} | {_f(row[f'answer_nll@{s}'], 4)} | "
                         f"{_f(sel.get('needle_block_kept', ''), 2)} | "
                         f"{_f(sel.get('question_block_kept', ''), 2)} |")
    if "losses" in d:
        loss, pk = np.array(d["losses"]), np.array(d["passkey_window"])
        n = len(loss)
        edges = [0, 25, 50, 100, 150, 200, 300, 400, 500, 600]
        edges = [e for e in edges if e < n] + [n]
        lines += ["", "| steps | train loss (all) | passkey windows | other windows |",
                  "|---|---|---|---|"]
        for a, b in zip(edges[:-1], edges[1:]):
            seg, m = loss[a:b], pk[a:b]
            other = f"{seg[~m].mean():.4f}" if (~m).any() else ""
            lines.append(f"| {a + 1}-{b} | {seg.mean():.4f} | {seg[m].mean():.4f} | {other} |")
        lines += ["", "| step | " + " | ".join(k for k in d["curve"][0] if k != "step") + " |",
                  "|---" * len(d["curve"][0]) + "|"]
        for r in d["curve"]:
            lines.append(f"| {r['step']} | " + " | ".join(
                f"{v:.4f}" for k, v in r.items() if k != "step") + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(summarise(Path(p)))
