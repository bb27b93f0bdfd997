"""The `keras-givt` command line: train a VAE and GIVT models, sample, evaluate, demo.

Run `keras-givt --help` (or `python -m keras_givt_cli --help`: the console
script, `keras_givt_cli.py`, imports the package lazily). Keras is imported
only after the arguments are parsed and checked, so `--backend` can set
`KERAS_BACKEND` first. `main.py` builds the parser from one module per command
family (`givt_commands`, `vq_commands`, `uvim_commands`) on top of shared
helpers: `run_record` (run.json records), `training` (checkpointed, resumable
fit loop), `data`, `model_io`, `evaluation`, `io_utils`; its docstring lists
the layout and the import rule.
"""
