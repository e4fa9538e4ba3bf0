"""lbp-benefit training: data, harmonisation, simulator, meta-analysis, learners, validation, cards."""
