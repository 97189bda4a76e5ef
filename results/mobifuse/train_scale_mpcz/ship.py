"""Ship MPCZ's scored seed-0 net as the bench's cross-rig net (after its rule adopted it).

python results/mobifuse/train_scale_mpcz/ship.py

Loads `nets/S16_s0.safetensors` (trained and scored by the rule's run), checks that its DEI
config is the one `configs/mobifuse/bench.yaml` now gives the cross-rig net, and writes the same
tensors under the bench's cache key in mobifuse/weights/, its metadata naming the run's command.
"""
import json
from pathlib import Path

from mobifuse.bench import WEIGHTS_DIR, net_key, rig_train_config
from mobifuse.config import BenchConfig
from mobifuse.models import load_model, save_model
from mobifuse.train import model_meta
from shared.cache import cache_key
from shared.config import load_config, to_dict

HERE = Path(__file__).resolve().parent
cfg = load_config("configs/mobifuse/bench.yaml", BenchConfig)
tc = rig_train_config(cfg)
net = load_model(HERE / "nets" / "S16_s0.safetensors")
if net.meta["dei"] != to_dict(tc.dei) or to_dict(net.cfg) != to_dict(tc.net):
    raise SystemExit("the net's DEI or net config is not the bench's cross-rig net's")
command = json.loads((HERE / "train_scale.json").read_text())["command"] + " (net S16 seed 0)"
key = cache_key("mobifuse-net", net_key(tc, True)[1])
save_model(net, WEIGHTS_DIR / f"{key}.safetensors", model_meta(tc, command))
print(f"shipped {key}.safetensors")
