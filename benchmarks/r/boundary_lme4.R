# lme4 reference fits for the boundary (saddle-point) checks of the linear mixed model.
# Usage: Rscript boundary_lme4.R <folder of design CSVs> <out.json>
# Each CSV has y, trial, the fixed-effect columns X_* and the random-effect columns Z_* of one
# model of the replication (exactly the package's design). Fitted by REML with a diagonal G
# ((0 + z1 + z2 ... || trial)), bobyqa with tight tolerances; also lme4's REML criterion at the
# package's theta when a file <name>.theta is given. Benchmark/test-reference tool only.
suppressPackageStartupMessages({ library(lme4); library(jsonlite) })
args <- commandArgs(trailingOnly = TRUE)
files <- list.files(args[1], pattern = "\\.csv$", full.names = TRUE)
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e6),
                    check.conv.singular = "ignore")
out <- list()
for (f in files) {
  d <- read.csv(f, check.names = FALSE)
  d$trial <- factor(d$trial)
  xs <- grep("^X_", names(d), value = TRUE)
  zs <- grep("^Z_", names(d), value = TRUE)
  bq <- function(v) paste0("`", v, "`")
  fo <- as.formula(paste("y ~ 0 +", paste(bq(xs), collapse = " + "), "+ (0 +",
                         paste(bq(zs), collapse = " + "), "|| trial)"))
  fit <- lmer(fo, data = d, REML = TRUE, control = ctrl)
  vc <- as.data.frame(VarCorr(fit))
  sds <- vc[vc$grp != "Residual", ]
  key <- sub("\\.csv$", "", basename(f))
  rec <- list(logLik = as.numeric(logLik(fit)), theta = as.list(getME(fit, "theta")),
              fixef = as.list(setNames(fixef(fit), sub("^X_", "", names(fixef(fit))))),
              se = as.list(setNames(sqrt(diag(as.matrix(vcov(fit)))), sub("^X_", "", names(fixef(fit))))),
              re_sd = as.list(setNames(sds$sdcor, sub("^Z_", "", sds$var1))),
              sigma = sigma(fit), singular = isSingular(fit))
  tf <- sub("\\.csv$", ".theta", f)
  if (file.exists(tf)) {
    dev <- lmer(fo, data = d, REML = TRUE, control = ctrl, devFunOnly = TRUE)
    rec$logLik_at_package_theta <- -0.5 * dev(scan(tf, quiet = TRUE))
  }
  out[[key]] <- rec
}
write(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), args[2])
