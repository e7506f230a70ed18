"""BALD (Houlsby et al. 2011; Gal et al. 2017): the mutual information I[y; w | x] between a point's
label and the model's weights, top-k."""

from bal.information import mutual_information
from bal.strategies import Strategy

STRATEGY = Strategy("#CC79A7", "X", scorer=mutual_information, needs_samples=True)
