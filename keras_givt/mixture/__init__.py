"""GIVT's output space: the "mixture head" stage of the data path.

`head.py` maps decoder features to mixture parameters (`GaussianMixtureHead`),
`distributions.py` holds the `keras.ops` mixture densities (and their TFP twins
for the checks), `guidance.py` the distribution-based classifier-free guidance
(DB-CFG) density, and `formulas.py` the formulas every decoding path shares.
"""

from keras_givt.mixture.distributions import DiagonalNormalMixture
from keras_givt.mixture.distributions import MultivariateNormalTriL
from keras_givt.mixture.distributions import NormalMixture
from keras_givt.mixture.head import GaussianMixtureHead
from keras_givt.mixture.head import square_plus
