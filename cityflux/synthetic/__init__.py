"""The synthetic city (OSSE): generated inputs and truths drawn from the TRUE covariances.

:func:`generate_inputs` makes the inputs (prior inventory, meteorology, observing network) that
:func:`cityflux.case.build_case` turns into a case with the same stages as real data;
:func:`observe` draws the truth (prior + a draw of the true prior covariance) and the
observations (true transport, true observation errors, site biases) — see
``synthetic.truth`` in the configuration.
"""

from ._generate import SyntheticWorld, generate_inputs
from ._truth import TruthModel, observe, truth_model

__all__ = ["SyntheticWorld", "TruthModel", "generate_inputs", "observe", "truth_model"]
