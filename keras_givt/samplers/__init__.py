"""Decoding loops of the generative tasks, and their settings.

- `config.py`: `ARSamplingConfig`, `MaskedSamplingConfig`,
  `DiscreteMaskedSamplingConfig` (frozen; `generate(..., sampling=config, **overrides)`).
- `decoder.py`: `Decoder`, the seam between the loops and a GIVT backbone
  (`prefill` / `step` / `forward` / `draw`); the torch engine
  (`models/givt/torch_generation.TorchDecoder`) is its only subclass.
- `autoregressive.py` (sampling and beam search with a KV cache), `masked.py`
  (continuous MaskGIT decoding), `discrete_masked.py` (discrete MaskGIT over VQ codes),
  `schedules.py` (mask schedules of both vocabularies), `random_utils.py`
  (seeded loops, the one Gumbel draw). None of them tests the backend.
"""

from keras_givt.samplers.config import ARSamplingConfig
from keras_givt.samplers.config import DiscreteMaskedSamplingConfig
from keras_givt.samplers.config import MaskedSamplingConfig
