"""MaskGIT's published ImageNet class-conditional models as keras_givt presets.

Each preset pairs MaskGIT's transformer checkpoint with its VQGAN tokenizer
(`flax.serialization.to_bytes` msgpack files listed in the
google-research/maskgit README, to the best of our knowledge; the URLs could
not be re-checked from the offline development machine). Transformer config
(MaskGIT's ImageNet config): 24 layers, 16 heads, hidden 768, MLP 3072,
dropout 0.1, 1000 classes, vocabulary 1024 + 1000 + 1; 16×16 tokens at 256²,
32×32 at 512². Sampling defaults: choice temperature 4.5 (MaskGIT's
`sample_choice_temperature`), cosine schedule, 8 / 12 steps (the paper's
256² / 512² settings). MaskGIT trains without label dropout, so these models
do not support `cfg_weight`.

This file holds data only: `MaskGITImageGenerator.from_preset(name)`
downloads both files, converts them once (`keras_givt.conversion.registry`)
into a keras-hub preset directory in the Keras cache and loads it from there.
"""

from keras_givt.models.vqvae.vqvae_presets import BASE_URL
from keras_givt.models.vqvae.vqvae_presets import VQVAE_CONFIG

_TRANSFORMER = {
    "hidden_size": 768,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 3072,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "vocab_size": 1024 + 1000 + 1,
}


def _preset(size, params, steps):
    latent = size // 16
    return {
        "metadata": {
            "description": (
                f"MaskGIT (24 layers, width 768) trained on ImageNet-2012 {size}×{size} "
                f"class-conditional over {latent}×{latent} VQGAN tokens (1024 codes), "
                f"with its tokenizer. Defaults: {steps} steps, cosine schedule, choice "
                "temperature 4.5."
            ),
            "params": params,
            "path": "maskgit",
        },
        "task": "MaskGITImageGenerator",
        "files": {
            "transformer": BASE_URL + f"maskgit_imagenet{size}_checkpoint",
            "tokenizer": BASE_URL + f"tokenizer_imagenet{size}_checkpoint",
        },
        "model_kwargs": dict(_TRANSFORMER, max_position_embeddings=latent * latent + 1),
        "codebook_size": 1024,
        "vqvae_config": dict(VQVAE_CONFIG),
        "image_size": size,
        "sampling_defaults": {"num_steps": steps, "schedule": "cosine", "choice_temperature": 4.5},
    }


maskgit_presets = {
    # Transformer parameters counted from the config (tokenizer not included).
    "maskgit_imagenet256": _preset(256, 172_457_193, 8),
    "maskgit_imagenet512": _preset(512, 173_047_017, 12),
}
