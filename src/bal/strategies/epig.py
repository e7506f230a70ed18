"""EPIG (Bickford Smith et al. 2023): the expected predictive information gain about target inputs.

For each candidate x, the mean over M target inputs x* of I(y; y* | x, x*) (bal.information.epig).
The loop draws the ``targets`` inputs at random each round, and predicts them with the candidates'
K masks: from the dataset's target set where it has one (unlabelled inputs from the test
distribution, held out of the pool: the paper's setting where the pool's distribution differs),
else from the unlabelled pool. ``epig_pool`` always draws from the pool.
"""

from __future__ import annotations

from bal.errors import ConfigError
from bal.information import epig
from bal.strategies import Run, Strategy, TargetOptions


def check_run(options: TargetOptions, run: Run) -> None:
    """The targets come from the target set, or else from the unlabelled pool, which must still hold them at the budget."""
    if run.target_set_size and options.targets > run.target_set_size:
        raise ConfigError(f"options.epig.targets = {options.targets}: must be at most the {run.target_set_size} inputs "
                          f"of the {run.dataset} target set (prepare.{run.dataset}.n_target).")
    if not run.target_set_size and options.targets > run.pool - run.budget:
        raise ConfigError(f"options.epig.targets = {options.targets}: must be at most the {run.pool - run.budget} "
                          f"points the {run.dataset} pool still holds at the budget ({run.budget_key}).")


STRATEGY = Strategy("#332288", ">", scorer=epig, inputs=("log_probs_N_K_C", "target_log_probs_M_K_C"),
                    needs_samples=True, options=TargetOptions, input_options=("targets",), check_run=check_run,
                    target_set=True)
