"""Every check of the full bench before the network's prior (`bench-full-sqi/`, the shipped
state before) and with it (`bench-full-prior/`), side by side, and the SCG rows of the network
arms (c), (d) and the beat-synchronous arm (e).
`python results/twscardio/bench-full-prior/compare.py > results/twscardio/bench-full-prior/compare.md`
(the same with `--quick` for the 12 x 60 runs: `bench-quick-12x60-sqi/` vs `bench-quick-12x60-prior/`)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from compare_runs import main  # noqa: E402

if "--quick" in sys.argv:
    main(["no prior=bench-quick-12x60-sqi", "prior=bench-quick-12x60-prior"])
else:
    main(["no prior=bench-full-sqi", "prior=bench-full-prior"])
