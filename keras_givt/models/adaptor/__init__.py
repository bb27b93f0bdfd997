"""big_vision iRevNet adaptor (invertible flow on latents)."""

from keras_givt.models.adaptor.irevnet_adaptor import IRevNetAdaptor
from keras_givt.models.adaptor.irevnet_adaptor import IRevNetBlock
