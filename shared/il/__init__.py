"""Imitation-learning data shared by packages: SAC experts, rollouts, D4RL-layout datasets.

- `sac` / `train_expert`: Soft Actor-Critic for expert policies (several seeds in lockstep,
  CUDA-graph updates on a GPU, checkpoint + resume); `export` picks expert and medium snapshots.
- `policy`: the saved tanh-Gaussian policy format; `policies/` holds the committed Hopper-v5 and
  HalfCheetah-v5 expert/medium policies and their reference returns.
- `rollout` / `generate`: seeded rollouts into expert, medium, random and noisy-expert datasets
  (cached), reference returns (ours and D4RL's).
- `datasets`: D4RL-layout HDF5 writer/loader, Minari directory loader/exporter, validation with
  errors naming the file and key, episode helpers.

Nothing here is specific to one paper.
"""
