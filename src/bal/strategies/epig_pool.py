"""EPIG with its targets always drawn from the unlabelled pool (the EPIG paper's ``_pool`` variant):
what ``epig`` does on a dataset without a target set, kept as its own strategy so that both appear
side by side where there is one.
"""

from __future__ import annotations

from bal.errors import ConfigError
from bal.information import epig
from bal.strategies import Run, Strategy, TargetOptions


def check_run(options: TargetOptions, run: Run) -> None:
    """The targets are drawn from the unlabelled pool, which must still hold them at the budget."""
    most = run.pool - run.budget
    if options.targets > most:
        raise ConfigError(f"options.epig_pool.targets = {options.targets}: must be at most the {most} points the "
                          f"{run.dataset} pool still holds at the budget ({run.budget_key}).")


STRATEGY = Strategy("#88CCEE", "H", scorer=epig, inputs=("log_probs_N_K_C", "target_log_probs_M_K_C"),
                    needs_samples=True, options=TargetOptions, input_options=("targets",), check_run=check_run)
