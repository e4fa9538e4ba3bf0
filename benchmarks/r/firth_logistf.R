# Reference fits for benchmarks/bench_firth_logistf.py: R logistf (Heinze's Firth logistic regression,
# profile penalised-likelihood CIs and penalised likelihood-ratio p) with tight tolerances.
# Usage: Rscript firth_logistf.R MODELS.csv DATA_FOLDER OUT.csv
# MODELS.csv: columns model, data (file name in DATA_FOLDER), formula.
suppressPackageStartupMessages(library(logistf))
args <- commandArgs(trailingOnly = TRUE)
models <- read.csv(args[1], stringsAsFactors = FALSE)
ctrl <- logistf.control(maxit = 500, maxstep = 5, lconv = 1e-12, gconv = 1e-12, xconv = 1e-12)
plc <- logistpl.control(maxit = 1000, lconv = 1e-12, xconv = 1e-12)
out <- list()
for (i in seq_len(nrow(models))) {
  m <- models[i, ]
  d <- if (m$data == "sex2") sex2 else read.csv(file.path(args[2], m$data))
  d <- d[complete.cases(d[, all.vars(as.formula(m$formula))]), ]
  f <- logistf(as.formula(m$formula), data = d, pl = TRUE, control = ctrl, plcontrol = plc)
  out[[i]] <- data.frame(model = m$model, term = names(coef(f)), estimate = unname(coef(f)),
                         se = sqrt(diag(vcov(f))), ci_low = unname(f$ci.lower), ci_high = unname(f$ci.upper),
                         p = unname(f$prob), loglik = f$loglik[["full"]], n = nrow(d))
  if (m$data == "sex2") write.csv(d, file.path(args[2], "sex2.csv"), row.names = FALSE)
}
write.csv(do.call(rbind, out), args[3], row.names = FALSE)
cat("logistf", as.character(packageVersion("logistf")), "\n")
