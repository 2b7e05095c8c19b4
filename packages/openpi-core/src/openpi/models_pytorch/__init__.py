"""pi0 / pi0.5 in plain PyTorch (no transformers patching). Parameter names are the JAX tree paths joined with '.',
so `model.safetensors` keys read like the orbax tree (e.g. `PaliGemma.llm.layers.attn.q_einsum.w`)."""
