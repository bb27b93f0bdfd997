"""The `keras-givt` command line: train a VAE and GIVT models, sample, evaluate, demo.

Run `keras-givt --help` (or `python -m keras_givt.cli.main --help`). Keras is
imported only after the arguments are parsed, so `--backend` can set
`KERAS_BACKEND` first.
"""
