"""Max entropy: the entropy of the predictive distribution, H[y|x]."""

from bal.information import predictive_entropy
from bal.strategies import Strategy

STRATEGY = Strategy("#E69F00", "s", scorer=predictive_entropy)
