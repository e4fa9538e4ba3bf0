# Reference for training/network: the contrast-based random-effects NMA fitted with metafor's rma.mv
# (REML, compound-symmetric heterogeneity with correlation 1/2) on an arm-level CSV
# (trial,treatment,n,mean,sd). Contrasts are computed here, independently of the Python code.
# Usage: Rscript bench_network_metafor.R ARMS.csv REFERENCE OUT.csv
suppressMessages(library(metafor))
args <- commandArgs(trailingOnly = TRUE)
arms <- read.csv(args[1], stringsAsFactors = FALSE)
ref <- args[2]
trts <- sort(unique(arms$treatment))
rows <- list(); V <- list(); k <- 0
for (s in unique(arms$trial)) {
  a <- arms[arms$trial == s, ]
  a <- a[order(match(a$treatment, trts)), ]
  v <- a$sd^2 / a$n
  m <- nrow(a)
  for (j in 2:m) {
    k <- k + 1
    x <- setNames(rep(0, length(trts)), trts)
    x[a$treatment[j]] <- 1; x[a$treatment[1]] <- x[a$treatment[1]] - 1
    rows[[k]] <- data.frame(study = s, comp = paste(a$treatment[j], a$treatment[1], sep = "-"),
                            design = paste(a$treatment, collapse = ":"), yi = a$mean[j] - a$mean[1],
                            t(x[trts != ref]), check.names = FALSE)
  }
  Vs <- matrix(v[1], m - 1, m - 1); diag(Vs) <- v[-1] + v[1]
  V[[length(V) + 1]] <- Vs
}
dat <- do.call(rbind, rows)
Vm <- bdiag(V)
others <- trts[trts != ref]
X <- as.matrix(dat[, others])
re <- rma.mv(dat$yi, as.matrix(Vm), mods = X, intercept = FALSE, random = ~ comp | study, rho = 1/2,
             data = dat, method = "REML")
fe <- rma.mv(dat$yi, as.matrix(Vm), mods = X, intercept = FALSE, data = dat, method = "FE")
# Design-by-treatment inconsistency model: design-specific contrast parameters
W <- model.matrix(~ 0 + interaction(dat$design, dat$comp, drop = TRUE))
inc <- rma.mv(dat$yi, as.matrix(Vm), mods = W, intercept = FALSE, random = ~ comp | study, rho = 1/2,
              data = dat, method = "REML")
# Wald test of consistency at the inconsistency model's tau^2: consistency model with tau^2 fixed
con_at <- rma.mv(dat$yi, as.matrix(Vm), mods = X, intercept = FALSE, random = ~ comp | study, rho = 1/2,
                 data = dat, method = "REML", sigma2 = NA, tau2 = inc$tau2)
# Random-effects Wald statistic: difference of GLS residual quadratic forms, both models at tau2_inc
M <- vcov(inc, type = "obs")
rc <- resid(con_at); ri <- resid(inc)
dbt <- as.numeric(t(rc) %*% solve(M, rc) - t(ri) %*% solve(M, ri))
out <- rbind(
  data.frame(quantity = "tau2_reml", value = re$tau2),
  data.frame(quantity = "loglik_reml", value = as.numeric(logLik(re))),
  data.frame(quantity = "Q_fixed", value = fe$QE),
  data.frame(quantity = "Q_fixed_df", value = fe$k - fe$p),
  data.frame(quantity = "tau2_inconsistency", value = inc$tau2),
  data.frame(quantity = "Q_between_designs_fixed", value = con_at$QE - inc$QE),
  data.frame(quantity = "dbt_chi2", value = dbt),
  data.frame(quantity = "dbt_df", value = inc$p - re$p),
  data.frame(quantity = paste0("d_re[", others, "]"), value = as.numeric(coef(re))),
  data.frame(quantity = paste0("se_re[", others, "]"), value = re$se),
  data.frame(quantity = paste0("d_fe[", others, "]"), value = as.numeric(coef(fe))),
  data.frame(quantity = paste0("se_fe[", others, "]"), value = fe$se))
write.csv(out, args[3], row.names = FALSE)
cat(sprintf("metafor %s\n", packageVersion("metafor")))
print(out, digits = 8)
