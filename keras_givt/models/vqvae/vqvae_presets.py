"""MaskGIT's published ImageNet VQGAN tokenizers as keras_givt presets.

Files: `flax.serialization.to_bytes` msgpack checkpoints listed in the
google-research/maskgit README (to the best of our knowledge; the URLs could
not be re-checked from the offline development machine). Config (MaskGIT's
`configs/maskgit_class_cond_config.py`): filters 128, channel multipliers
(1, 1, 2, 2, 4), 2 ResBlocks per level, average-pool downsampling, swish,
GroupNorm, 256-dim codes, 1024 codes; 16× downsampling (16×16 tokens at 256²,
32×32 at 512²).

This file holds data only: `VQGANTokenizer.from_preset(name)` downloads the
file, converts it once (`keras_givt.conversion.registry`) into `model.keras`
in the Keras cache and loads that.
"""

BASE_URL = "https://storage.googleapis.com/maskgit-public/checkpoints/"

VQVAE_CONFIG = {
    "filters": 128,
    "num_res_blocks": 2,
    "channel_multipliers": [1, 1, 2, 2, 4],
    "embedding_dim": 256,
    "codebook_size": 1024,
    "conv_downsample": False,
    "activation_fn": "swish",
    "norm_type": "GN",
    "commitment_cost": 0.25,
    "entropy_loss_ratio": 0.1,
    "entropy_loss_type": "softmax",
    "entropy_temperature": 0.01,
}

_PARAMS = 54_515_587  # Counted on the built model.

backbone_presets = {
    f"vqgan_tokenizer_imagenet{size}": {
        "metadata": {
            "description": (
                f"MaskGIT's VQGAN tokenizer trained on ImageNet-2012 at {size}×{size}: "
                f"{size // 16}×{size // 16} tokens from a 1024-code codebook (images in [0, 1])."
            ),
            "params": _PARAMS,
            "path": "vqvae",
        },
        "task": "VQGANTokenizer",
        "files": {"tokenizer": BASE_URL + f"tokenizer_imagenet{size}_checkpoint"},
        "config": dict(VQVAE_CONFIG),
        "image_size": size,
    }
    for size in (256, 512)
}
