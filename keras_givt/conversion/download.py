"""The one fetcher of published checkpoint files (big_vision, MaskGIT).

`fetch(url)` returns a local path for a `https://`, `gs://` or `file://` URL
(or an existing local path, returned as is). Downloads go through
`keras.utils.get_file` into `$KERAS_HOME/models/keras_givt/`, so each file is
fetched once; offline, the error names the URL and how to load a local file
instead.
"""

import os

import keras

from keras_givt.utils.preset_utils import keras_home

GCS_HTTPS = "https://storage.googleapis.com/"


def https_url(url):
    """`url` with a `gs://bucket/...` address rewritten to its public https URL."""
    if url.startswith("gs://"):
        return GCS_HTTPS + url[len("gs://") :]
    return url


def is_url(path):
    """True for the URLs `fetch` downloads (`http(s)://`, `gs://`, `file://`)."""
    return os.fspath(path).startswith(("http://", "https://", "gs://", "file://"))


def fetch(url, what="checkpoint"):
    """A local path for `url`, downloaded once into the Keras cache.

    Args:
        url: str, an `https://`, `gs://` or `file://` URL, or a local path
            (returned unchanged when it exists).
        what: str, the file in messages (e.g. "vae checkpoint").

    Returns:
        str, the local path.

    Raises:
        ValueError: the download failed (offline, wrong URL); the message
            names the URL and how to load a file downloaded by hand.
    """
    url = https_url(os.fspath(url))
    if os.path.exists(url):
        return url
    fname = "big_vision_" + url.rstrip("/").split("/")[-1]
    # keras.utils.get_file silently falls back to /tmp/.keras when the cache
    # directory does not exist yet.
    os.makedirs(keras_home(), exist_ok=True)
    try:
        return keras.utils.get_file(
            fname=fname, origin=url, cache_subdir="models/keras_givt", cache_dir=keras_home()
        )
    except Exception as e:
        raise ValueError(
            f"Could not download the {what} {url!r} ({type(e).__name__}: {e}). "
            "If this machine is offline, download the file elsewhere and load it locally, "
            "passing the local file instead of the URL: "
            "`keras_givt.conversion.big_vision.load_givt_params(backbone, '/path/to/file')` "
            "for GIVT params, `keras_givt.conversion.big_vision_vae.load_beta_vae("
            "'/path/to/file', config)` for a VAE (for a preset name, config = "
            "`keras_givt.models.vae.backbone_presets[name]['config']`), or "
            "`keras_givt.utils.preset_utils.resolve_preset(name, files={...local paths...})`."
        ) from e
