"""Runs keras_givt on the reference fixtures made by big_vision and maskgit.

The parity harness of `tools/check_big_vision_fixtures.py` and the parity
tests (it is not part of the installed package). Each runner takes a config
folder and its `index.json` entry (and the expected outputs `want`, for the
few arrays drawn from JAX's PRNG that are passed through) and returns
`{output name: numpy array}` for every output keras_givt computes:

- `givt.py`: GIVT decoders (and the encoder-decoder GIVT of UViM),
  big_vision's `mask_schedule` functions;
- `vae.py`: big_vision's CNN VAE and iRevNet adaptor;
- `uvim.py`: big_vision's UViM ViT VAE;
- `maskgit.py`: google-research/maskgit's VQGAN, transformer and schedules;
- `fixture_files.py`: reading a config folder (shared by all of them).
"""

from tools.parity import givt
from tools.parity import maskgit
from tools.parity import uvim
from tools.parity import vae
from tools.parity.fixture_files import read_inputs


def run_functions(cdir, entry, want=None):
    """Kind `functions`, shared by two fixtures: MaskGIT's `mask_schedule.schedule`
    (recognised by its `total_unknown` input) and big_vision's `mask_schedule`."""
    if "total_unknown" in read_inputs(cdir):
        return maskgit.run_maskgit_schedule(cdir, entry, want)
    return givt.run_mask_schedule(cdir, entry, want)


# Fixture kind (`index.json` entry "kind") -> runner.
RUNNERS = {
    "givt": givt.run_givt,
    "givt_uvim": givt.run_givt,
    "functions": run_functions,
    "vae": vae.run_vae,
    "adaptor": vae.run_adaptor,
    "vit_vae": uvim.run_vit_vae,
    "vqgan": maskgit.run_vqgan,
    "maskgit_transformer": maskgit.run_maskgit_transformer,
}


def run_config(cdir, entry, want=None):
    """Every output keras_givt computes for one fixture config."""
    kind = entry.get("kind")
    if kind not in RUNNERS:
        raise NotImplementedError(f"fixture kind {kind!r} is not supported yet")
    return RUNNERS[kind](cdir, entry, want)
