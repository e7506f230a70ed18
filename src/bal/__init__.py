"""bal: reproducible deep Bayesian active learning (MC dropout, BALD, BatchBALD) as DVC pipelines."""
