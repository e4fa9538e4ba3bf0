#!/bin/bash
# interleaved CPU-per-request runs: before (2571a6b), mine (2571a6b + this branch's commits), tip (main now)
PY=/work/main/.venv/bin/python
run() { # name tree args...
  local name=$1 tree=$2; shift 2
  (cd $tree && PYTHONPATH=$tree timeout 300 $PY benchmarks/profile_request.py "$@" --seconds 6 --no-profile --out /tmp/i19s/cpu/$name-r$R.json 2>&1 | tail -1 | sed "s|^|$name r$R: |")
}
for R in 1 2; do
  run bare /tmp/i19s/before --bare
  run bare_noshap /tmp/i19s/before --bare-no-shap
  for T in before mine tip; do
    tree=/tmp/i19s/$T; [ $T = tip ] && tree=/work/wt/i19s
    run $T-small $tree --model /tmp/i19s/small
    run $T-default $tree --model /tmp/i19s/default
    run $T-stub $tree --model /tmp/i19s/small --stub-scorer
  done
  run before-stub-mp /tmp/i19s/before --model /tmp/i19s/small --stub-scorer --multiprocess
  run mine-stub-mp /tmp/i19s/mine --model /tmp/i19s/small --stub-scorer --multiprocess
done
