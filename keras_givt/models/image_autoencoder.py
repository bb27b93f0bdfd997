"""`ImageAutoencoder`: what the frozen CNN image models share.

`BetaVAE` (continuous latents) and `VQGANTokenizer` (discrete codes) are
plain `keras.Model`s (not keras-hub backbones) around a `CNNEncoder` /
`CNNDecoder` pair. Both

- keep their presets as a directory holding one `model.keras` file; a
  built-in name resolves to such a directory through
  `preset_utils.resolve_preset` (the big_vision / MaskGIT checkpoint
  converted once into the Keras cache);
- downsample images by 2 per resolution level but the last;
- create their variables with a dummy batch (`build_for_image_size`), so
  that deserialization builds before loading weights;
- serialize keras-hub style: only name/trainable/dtype from the base class.

Dimension letters: H/W/C image, h/w latent grid.
"""

import contextlib
import os

import keras
from keras import ops
from keras_hub.src.utils.python_utils import classproperty


def _no_autograd():
    """`torch.no_grad()` on torch (eager ops there are recorded for autograd), else nothing."""
    if keras.config.backend() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


class ImageAutoencoder:
    """Mixin of a CNN image `keras.Model`: presets, downsampling, building, config.

    A subclass lists it before `keras.Model`, sets `channel_multipliers`
    and names its presets in errors with `preset_description` (e.g. "VAE").

    Example:
    ```python
    vae = keras_givt.BetaVAE.from_preset("beta_vae_imagenet_256_beta_5e-5")
    vae.downsampling_factor  # 16
    ```
    """

    # How errors name this model's presets ("a built-in VAE preset").
    preset_description = "model"

    @property
    def downsampling_factor(self):
        """H / h: 2 per level of `channel_multipliers` but the last."""
        return 2 ** (len(self.channel_multipliers) - 1)

    def _dummy_images(self, image_size, channels):
        """A (1, H, W, C) batch of zeros; `image_size` is an int S or a pair (H, W)."""
        if isinstance(image_size, (list, tuple)):
            height, width = int(image_size[0]), int(image_size[1])
        else:
            height = width = int(image_size)
        return ops.zeros((1, height, width, channels))

    def build_for_image_size(self, image_size, channels=3):
        """Creates all variables by running a (1, H, W, C) dummy batch.

        `image_size` is an int S or a pair (H, W). On torch the batch runs
        under `torch.no_grad()`: recorded for autograd, one 512x512 forward of
        the ImageNet VAE held > 10 GB (1.1 GB without), which every
        conversion and load of the 512px presets pays.
        """
        with _no_autograd():
            self(self._dummy_images(image_size, channels))
        return self

    def _base_config(self):
        """keras-hub style: only name/trainable/dtype from the base class."""
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }

    @classproperty
    def presets(cls):
        """Built-in presets of this class: `{name: metadata}`."""
        from keras_givt.utils import preset_utils

        return {k: v["metadata"] for k, v in preset_utils.presets_for((cls.__name__,)).items()}

    @classmethod
    def from_preset(cls, preset):
        """Loads a preset: a built-in name (converted once into the Keras
        cache) or a directory holding `model.keras`."""
        from keras_givt.utils import preset_utils

        path = preset_utils.resolve_preset(preset)
        model_file = os.path.join(os.fspath(path), "model.keras")
        if not os.path.isfile(model_file):
            raise ValueError(
                f"`preset` must be a built-in {cls.preset_description} preset "
                f"({sorted(cls.presets)}) or a directory with a model.keras file; received "
                f"preset={preset!r}."
            )
        return keras.saving.load_model(model_file)
