"""`MaskedEditing`: the masked `generate` pipeline and `inpaint` of the two MaskGIT tasks.

`GIVTMaskGIT` (continuous VAE latents) and `MaskGITImageGenerator` (discrete
VQGAN codes) decode the same way: start from a token grid where some tokens
are unknown, reveal them in `num_steps` parallel steps, decode to images.
`generate` starts with every token unknown; `inpaint` encodes real images,
marks the tokens under a pixel mask unknown and pastes the known pixels back.

The mixin holds that pipeline once. A task plugs in through small hooks:

- `sampling_config_class`: its config (`samplers.config`);
- `masked_generate_name`: the key of its compiled `generate_step`;
- `token_dtype`, `_blank_tokens(batch)`: its token type and an all-unknown grid;
- `_masked_inputs(tokens, token_mask, labels, sampling, use_cfg)`: the
  tensors its `generate_step` reads;
- `_encode_for_inpaint(images)`, `_inpaint_token_inputs(x, mask)`,
  `inpaint_token_ranks`, `inpaint_token_description`: what `inpaint` takes.

Dimension letters: B batch, H/W/C image, h/w token grid, L = h·w tokens,
D token dim, S decoding steps.
"""

import math

import numpy as np
from keras import ops

from keras_givt.samplers.masked import pixel_mask_to_token_mask
from keras_givt.utils import validation


class MaskedEditing:
    """Mixin of a `GenerationTask`: masked generation and `inpaint`.

    A subclass lists it before its `GenerationTask` base
    (`class GIVTMaskGIT(MaskedEditing, GIVTTask)`), keeps its own public
    `generate`/`inpaint` signatures and docstrings, and calls
    `_generate_masked` / `_inpaint_masked` from them.
    """

    # Name of the compiled `generate_step` (the compile-cache key).
    masked_generate_name = "masked"
    # dtype of the token grid (float32 latents or int32 codes).
    token_dtype = "float32"
    # `inpaint` inputs other than (B, H, W, C) images: their ranks and how
    # error messages name them.
    inpaint_token_ranks = ()
    inpaint_token_description = "tokens"

    # --- Hooks -------------------------------------------------------------

    def _blank_tokens(self, batch):
        """An all-unknown token grid of `batch` rows (numpy)."""
        raise NotImplementedError

    def _masked_inputs(self, tokens, token_mask, labels, sampling, use_cfg):
        """The input dict of tensors of `generate_step`."""
        raise NotImplementedError

    def _encode_for_inpaint(self, images):
        """Tokens of the float32 images (B, H, W, C) that `inpaint` edits."""
        raise NotImplementedError

    def _inpaint_token_inputs(self, x, mask):
        """`(tokens, token_mask)` of token inputs to `inpaint`."""
        raise NotImplementedError

    # --- Decoding ------------------------------------------------------------

    def _run(self, tokens, token_mask, labels, sampling, seed=None):
        """`(tokens, counts (B, S))`: decodes the unknown tokens (`token_mask` True).

        Args:
            tokens: the token grid (B, L[, D]); unknown entries are ignored.
            token_mask: (B, L) bool, True = unknown (to sample).
            labels: (B,) int32 or None.
            sampling: the task's sampling config (unset fields take the
                built-in defaults); its `cfg_weight` is used as it is.
            seed: int or None.
        """
        sampling = sampling.resolved()
        use_cfg = self._check_cfg(sampling.cfg_weight)
        inputs = self._masked_inputs(tokens, token_mask, labels, sampling, use_cfg)
        mode = (use_cfg, sampling.num_steps, sampling.schedule)
        mode += (True,) if sampling.greedy else ()
        return self._generate_compiled(self.masked_generate_name, inputs, seed, *mode)

    def _generate_masked(
        self,
        labels,
        num_samples,
        seed,
        sampling,
        overrides,
        return_tokens,
        return_num_masked,
        image_range,
        return_tokens_name="return_tokens",
    ):
        """The body of the masked `generate` (every argument checked before any work)."""
        flags = {return_tokens_name: return_tokens, "return_num_masked": return_num_masked}
        sampling, requested, seed, image_range, return_tokens, return_num_masked = (
            self._check_call_arguments("generate", sampling, overrides, seed, image_range, **flags)
        )
        labels, batch, sampling = self._call_labels(labels, num_samples, sampling, requested)
        token_mask = np.ones((batch, self.backbone.seq_len), bool)
        out, counts = self._run(self._blank_tokens(batch), token_mask, labels, sampling, seed)
        out = out if return_tokens else self._decode_to_range(out, image_range)
        return (out, counts) if return_num_masked else out

    # --- Editing -------------------------------------------------------------

    def _inpaint_masked(
        self,
        images,
        mask,
        labels,
        seed,
        sampling,
        overrides,
        return_tokens,
        return_num_masked,
        paste_back,
        image_range,
        token_grid,
        return_tokens_name="return_tokens",
    ):
        """The body of `inpaint` (every argument checked before any work).

        `token_grid` is a zero-argument function giving (h, w).
        """
        flags = {
            return_tokens_name: return_tokens,
            "paste_back": paste_back,
            "return_num_masked": return_num_masked,
        }
        sampling, requested, seed, image_range, return_tokens, paste_back, return_num_masked = (
            self._check_call_arguments("inpaint", sampling, overrides, seed, image_range, **flags)
        )
        checked = {}

        def check_batch(batch):  # Labels and guidance, before anything is encoded.
            checked["labels"] = self._call_labels(labels, None, sampling, requested, batch=batch)

        tokens, token_mask, pixels, pixel_mask = self._inpaint_tokens(
            images, mask, token_grid, image_range, check_batch
        )
        labels, _, sampling = checked["labels"]
        if not token_mask.any():  # Everything known: the input comes back.
            counts = ops.zeros((token_mask.shape[0], sampling.num_steps), "float32")
            if pixels is not None and paste_back and not return_tokens:
                out = ops.convert_to_tensor(pixels)
                return (out, counts) if return_num_masked else out
            if tokens is None:
                native = self._to_native(pixels, image_range)
                tokens = self._encode_for_inpaint(ops.convert_to_tensor(native, "float32"))
            out = ops.convert_to_tensor(tokens, self.token_dtype)
        else:
            out, counts = self._run(tokens, token_mask, labels, sampling, seed)
        if return_tokens:
            return (out, counts) if return_num_masked else out
        decoded = self._decode_to_range(out, image_range)
        if paste_back and pixels is not None:
            decoded = self._paste_back(decoded, pixels, pixel_mask)
        return (decoded, counts) if return_num_masked else decoded

    def _square_token_grid(self, hint=""):
        """(h, w) of a square grid of `backbone.seq_len` tokens (`hint` ends the error)."""
        seq_len = self.backbone.seq_len
        side = int(round(math.sqrt(seq_len)))
        if side * side != seq_len:
            raise ValueError(f"seq_len={seq_len} is not a square{hint}.")
        return side, side

    def _inpaint_tokens(self, images, mask, token_grid, image_range=None, check_batch=None):
        """`(tokens, token_mask (B, L) bool numpy, pixels, pixel_mask)` of an `inpaint` call.

        Images (B, H, W, C) in `image_range` are checked, encoded by
        `_encode_for_inpaint` and the pixel mask (B, H, W), (B, H, W, 1) or
        (H, W) (True / 1 = regenerate) mapped onto `token_grid()` (a token
        is regenerated when any of its pixels is); `pixels` (float32 numpy)
        and `pixel_mask` (B, H, W) bool are returned for pasting back. Token
        inputs (ranks `inpaint_token_ranks`) and their mask go through
        `_inpaint_token_inputs`; `pixels` and `pixel_mask` are then None.
        `check_batch(B)` (the call's remaining checks, e.g. labels) runs once
        the inputs are checked, before anything is encoded.
        """
        image_range = self._check_image_range(image_range)
        try:
            rank = len(images.shape)
        except (AttributeError, TypeError):
            rank = np.ndim(images)
        if rank == 4:
            pixels = self._check_images(images, image_range)
            pixel_mask = validation.check_binary_mask("mask", mask)
            b, height, width = pixels.shape[:3]
            if pixel_mask.shape == (height, width):
                pixel_mask = np.broadcast_to(pixel_mask, (b, height, width))
            elif pixel_mask.shape == (b, height, width, 1):
                pixel_mask = pixel_mask[..., 0]
            if pixel_mask.shape != (b, height, width):
                raise ValueError(
                    f"`mask` must be a ({b}, {height}, {width}) pixel mask (or ({height}, "
                    f"{width}), or ({b}, {height}, {width}, 1)) for images of shape "
                    f"{pixels.shape}, True / 1 = regenerate. Received: mask with shape "
                    f"{pixel_mask.shape}"
                )
            h, w = token_grid()
            if height % h or width % w:
                raise ValueError(
                    f"`images` of size {(height, width)} must be a multiple of the token grid "
                    f"{(h, w)}. Received: images with shape {pixels.shape}"
                )
            token_mask = np.asarray(
                ops.convert_to_numpy(pixel_mask_to_token_mask(pixel_mask, (h, w)))
            )
            if check_batch is not None:
                check_batch(b)
            if token_mask.any():
                native = self._to_native(pixels, image_range)
                tokens = self._encode_for_inpaint(ops.convert_to_tensor(native, "float32"))
            else:
                tokens = None  # Everything is known: nothing to encode.
            return tokens, token_mask, pixels, pixel_mask
        if rank in self.inpaint_token_ranks:
            tokens, token_mask = self._inpaint_token_inputs(images, mask)
        else:
            raise ValueError(
                f"`images` must be (B, H, W, C) images or {self.inpaint_token_description}. "
                f"Received: images with shape {tuple(np.shape(images))}"
            )
        token_mask = np.asarray(ops.convert_to_numpy(token_mask)).astype(bool)
        batch = int(tokens.shape[0])
        seq_len = self.backbone.seq_len
        if tuple(token_mask.shape) != (batch, seq_len):
            raise ValueError(
                f"The token mask must be ({batch}, {seq_len}); received {tuple(token_mask.shape)}."
                f" Received: mask with shape {tuple(token_mask.shape)}"
            )
        if check_batch is not None:
            check_batch(batch)
        return tokens, token_mask, None, None

    def _paste_back(self, decoded, pixels, pixel_mask):
        """The input `pixels` where `pixel_mask` is False, `decoded` elsewhere."""
        if tuple(decoded.shape) != tuple(pixels.shape):
            raise ValueError(
                f"The decoded images {tuple(decoded.shape)} do not have the input's shape "
                f"{pixels.shape}: pass `paste_back=False` to get the raw decode."
            )
        keep = ops.convert_to_tensor(~pixel_mask[..., None])
        return ops.where(keep, ops.convert_to_tensor(pixels), ops.cast(decoded, "float32"))
