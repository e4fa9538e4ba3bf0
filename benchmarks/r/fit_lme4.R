# Fit the benchmark models with lme4 (tight tolerances), glmmTMB and nlme; write timings and
# estimates as JSON. Usage: Rscript fit_lme4.R <data.csv> <out.json> <model> [<model> ...]
# Models: lmm, lmm_by_group, glmm, lmm_strat, glmm_strat (see bench_mixed_vs_lme4.py).
# Benchmark-only tool; not a dependency of the package.
suppressPackageStartupMessages({
  library(lme4); library(glmmTMB); library(nlme); library(jsonlite)
})
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], stringsAsFactors = FALSE)
d$trial <- factor(d$trial)
models <- args[-(1:2)]

f_main <- y ~ 0 + trial + baseline + treat + modifier + treat:modifier
f_strat <- y ~ 0 + trial + trial:baseline + trial:modifier + treat + treat:modifier
lctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e6))
gctrl <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12, optCtrl = list(rhoend = 1e-12, maxfun = 1e6))

timed <- function(expr) {
  t <- system.time(v <- force(expr))[["elapsed"]]
  list(value = v, time = t)
}

from_merMod <- function(fit, time) {
  vc <- as.data.frame(VarCorr(fit))
  sds <- vc[vc$grp == "trial" & is.na(vc$var2), ]
  cors <- vc[vc$grp == "trial" & !is.na(vc$var2), ]
  sig <- vc[vc$grp == "Residual", "sdcor"]
  list(time = time, fixef = as.list(fixef(fit)), se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
       re_sd = as.list(setNames(sds$sdcor, sds$var1)), re_corr = as.list(cors$sdcor),
       sigma = if (length(sig)) sig else NULL, logLik = as.numeric(logLik(fit)),
       messages = as.list(c(fit@optinfo$conv$lme4$messages, if (isSingular(fit)) "singular")))
}

from_tmb <- function(fit, time) {
  vc <- VarCorr(fit)$cond$trial
  sds <- attr(vc, "stddev"); cr <- attr(vc, "correlation")
  fe <- fixef(fit)$cond
  out <- list(time = time, fixef = as.list(fe), se = as.list(sqrt(diag(vcov(fit)$cond))),
              re_sd = as.list(sds), re_corr = if (length(sds) > 1) as.list(cr[lower.tri(cr)]) else list(),
              logLik = as.numeric(logLik(fit)), messages = list())
  if (family(fit)$family == "gaussian") out$sigma <- sigma(fit)
  out
}

res <- list()
for (m in models) {
  f <- if (grepl("strat", m)) f_strat else f_main
  re <- if (grepl("strat", m)) "(0 + treat | trial)" else "(0 + treat + baseline | trial)"
  fr <- update(f, paste(". ~ . +", re))
  if (m %in% c("lmm", "lmm_strat")) {
    a <- timed(lmer(fr, data = d, REML = TRUE, control = lctrl))
    res[[paste0(m, "/lme4")]] <- from_merMod(a$value, a$time)
    b <- timed(glmmTMB(fr, data = d, REML = TRUE))
    res[[paste0(m, "/glmmTMB")]] <- from_tmb(b$value, b$time)
  } else if (m == "lmm_by_group") {
    b <- timed(glmmTMB(fr, data = d, REML = TRUE, dispformula = ~ 0 + trial))
    o <- from_tmb(b$value, b$time)
    o$sigma_by_group <- as.list(exp(0.5 * fixef(b$value)$disp))  # glmmTMB disp = log(sigma^2)
    res[[paste0(m, "/glmmTMB")]] <- o
    a <- timed(lme(f, random = ~ 0 + treat + baseline | trial, data = d, method = "REML",
                   weights = varIdent(form = ~ 1 | trial),
                   control = lmeControl(maxIter = 500, msMaxIter = 500, tolerance = 1e-10)))
    fit <- a$value
    vc <- VarCorr(fit)
    sds <- as.numeric(vc[c("treat", "baseline"), "StdDev"])
    ratios <- coef(fit$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)
    res[[paste0(m, "/nlme")]] <- list(time = a$time, fixef = as.list(fixef(fit)),
      se = as.list(sqrt(diag(vcov(fit)))), re_sd = list(treat = sds[1], baseline = sds[2]),
      re_corr = list(as.numeric(vc["baseline", "Corr"])), logLik = as.numeric(logLik(fit)),
      sigma_by_group = as.list(fit$sigma * ratios), messages = list())
  } else if (m %in% c("glmm", "glmm_strat")) {
    a <- timed(glmer(fr, data = d, family = binomial, control = gctrl))
    res[[paste0(m, "/lme4")]] <- from_merMod(a$value, a$time)
    b <- timed(glmmTMB(fr, data = d, family = binomial))
    res[[paste0(m, "/glmmTMB")]] <- from_tmb(b$value, b$time)
  }
}
writeLines(toJSON(res, auto_unbox = TRUE, digits = NA, null = "null"), args[2])
