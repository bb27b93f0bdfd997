"""`PresetBackbone`: the keras-hub `Backbone` base of keras_givt's backbones.

It adds what `GIVTBackbone` and `MaskGITBackbone` share about presets:
built-in names resolve through `preset_utils.resolve_preset` (big_vision /
MaskGIT checkpoints converted once), and `load_weights` refuses a truncated
file or one that does not fit the config, naming both.
"""

from keras_hub.models import Backbone


class PresetBackbone(Backbone):
    """A keras-hub `Backbone` with keras_givt's preset resolution and checked loading."""

    def load_weights(self, filepath, *args, **kwargs):
        """`keras.Model.load_weights`; a file that does not fit this config
        (layer count, widths) or is truncated raises a `ValueError` naming the
        file and the config (`preset_utils.load_weights_checked`)."""
        from keras_givt.utils import preset_utils

        def load():
            return super(PresetBackbone, self).load_weights(filepath, *args, **kwargs)

        return preset_utils.load_weights_checked(self, filepath, load)

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """Loads a backbone from a built-in name (converted once), a keras-hub
        handle or a local preset directory."""
        from keras_givt.utils import preset_utils

        return super().from_preset(
            preset_utils.resolve_preset(preset), load_weights=load_weights, **kwargs
        )
