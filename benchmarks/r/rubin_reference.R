# Reference values for tests/test_impute_rubin.py: Rubin's rules with Barnard-Rubin df from R mice
# (Debian r-cran-mice 3.15.0). Run: Rscript benchmarks/r/rubin_reference.R
library(mice)
# reference: pool.scalar (Barnard-Rubin df) on fixed numbers
Q <- c(1.2, 1.5, 0.9, 1.1, 1.4); U <- c(0.04, 0.05, 0.045, 0.05, 0.042)
r <- pool.scalar(Q, U, n = 53, k = 3)   # dfcom = n - k = 50
cat(sprintf("%.12g ", c(r$qbar, r$ubar, r$b, r$t, r$df, r$r, r$fmi, r$lambda)), "\n")
r2 <- pool.scalar(Q, U, n = Inf, k = 1)
cat(sprintf("%.12g ", c(r2$qbar, r2$t, r2$df, r2$fmi)), "\n")
