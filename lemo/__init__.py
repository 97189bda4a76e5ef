"""lemo: long-context LLM fine-tuning with contextual token sparsity (LeMo / JENGA, USENIX ATC'25):
token elimination, learned pattern predictors, segment-based kernels, on HF transformers + peft
LoRA.

Not implemented yet: this package is a placeholder and exposes nothing.
"""
