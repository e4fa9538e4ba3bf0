"""Multiple imputation for pooled trials: multilevel chained equations that include the outcome and
the treatment (``mice``), Rubin's rules (``rubin``) and MI for the linear benefit learners (``learner``)."""
from training.impute.mice import MultilevelMICE
from training.impute.rubin import Pooled, barnard_rubin_df, d1_test, pool

__all__ = ["MultilevelMICE", "Pooled", "barnard_rubin_df", "d1_test", "pool"]
