"""crosslm: mutual enhancement of a server LLM and client SLMs through SLM-guided data
generation (CrossLM, Deng et al., arXiv 2312.05842), on `shared.fl` and Flower.

Modules (paper concept -> module):
- label-conditioned generation, nucleus sampling, deduplication: `crosslm.generation`;
- SLM feedback aggregation, reward-weighted / top-q LLM update, generalisation guard, selection
  of the clients' synthetic set: `crosslm.feedback`;
- client SLM training and scoring: `crosslm.slm`; the round as a Strategy + FLClient:
  `crosslm.federation` (`CrossLMStrategy`, `CrossLMClient`);
- LLM (tiny byte-level Llama pretrained offline, or `from_pretrained`), LoRA, SLMs (MiniLM head,
  byte CNN, byte BiLSTM): `crosslm.models`;
- tasks (stdlib docstring topics, docs-binary, polarity sentences, out-of-family docs) and the
  Dirichlet split: `crosslm.data`; oracle judge and LLM metrics: `crosslm.evaluation`;
- baselines (FedAvg, centralised): `crosslm.baselines`; assembly: `crosslm.pipeline`;
- recipes: `python -m crosslm.train | crosslm.eval | crosslm.bench`.

Example (what a notebook user types; instant): two clients score four synthetic samples, the
server averages the scores, keeps the best half of each label for the clients, and a repeated
generation is dropped.

>>> import numpy as np
>>> from crosslm import aggregate_scores, clean_samples, select_for_clients
>>> scores = np.array([[0.9, 0.2, 0.6, 0.1], [0.7, 0.4, 0.8, 0.3]])  # p_SLM_k(y | x~)
>>> s = aggregate_scores(scores)
>>> s.round(2).tolist()
[0.8, 0.3, 0.7, 0.2]
>>> select_for_clients(s, labels=np.array([0, 0, 1, 1]), keep_top=0.5).tolist()
[0, 2]
>>> clean_samples(["A  sample text", "a sample text", "tiny"], np.array([0, 1, 1]),
...               min_chars=5, max_chars=100)[0]
['A sample text']

A whole federation: `build_setup(load_config("configs/crosslm/tiny.yaml", CrossLMConfig))`,
`make_arm(setup, "crosslm")`, then `shared.fl.run_rounds` (or `python -m crosslm.train`).
"""

from crosslm.config import CrossLMConfig
from crosslm.data import FederatedText, TextTask, federate, load_polarity, load_task, ood_task
from crosslm.evaluation import OracleJudge, generative_accuracy, label_fidelity
from crosslm.federation import CrossLMClient, CrossLMStrategy
from crosslm.feedback import (
    aggregate_scores,
    sample_weights,
    select_for_clients,
    unlikelihood_loss,
    update_llm,
    weighted_nll_loss,
)
from crosslm.generation import clean_samples, label_prompts, sample_label_conditioned
from crosslm.models import (
    ByteBiLSTM,
    ByteCNN,
    ByteCodec,
    MiniLMEmbedder,
    MiniLMHead,
    load_llm,
    pretrained_llm,
    with_lora,
)
from crosslm.pipeline import Setup, build_setup, make_arm

__all__ = ["CrossLMConfig", "TextTask", "FederatedText", "load_task", "load_polarity",
           "ood_task", "federate", "OracleJudge", "label_fidelity", "generative_accuracy",
           "CrossLMClient", "CrossLMStrategy", "aggregate_scores", "sample_weights",
           "select_for_clients", "weighted_nll_loss", "unlikelihood_loss", "update_llm",
           "clean_samples", "label_prompts", "sample_label_conditioned", "ByteCodec",
           "MiniLMEmbedder", "MiniLMHead", "ByteCNN", "ByteBiLSTM", "load_llm",
           "pretrained_llm", "with_lora", "Setup", "build_setup", "make_arm"]
