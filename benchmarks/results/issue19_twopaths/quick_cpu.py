import sys, time, os, json
sys.path.insert(0, os.getcwd())
import numpy as np
from predict import Scorer
sys.path.insert(0, os.getcwd() + "/benchmarks")
from bench_scoring import patients
sc = Scorer.load(sys.argv[1])
df = patients(sc, 10000)
full = df.copy()
for c in sc.schema.names:
    full[c] = full[c].fillna(full[c].median())
comp = "usual_care"
recs = [{k: v for k, v in r.items() if v == v} for r in df.head(2000).to_dict("records")]
out = {}
def T(key, fn, count):
    fn()
    best = 1e9
    for _ in range(2):
        c = time.process_time(); fn(); best = min(best, time.process_time() - c)
    out[key] = count / best
T("table_missing_1thread", lambda: sc.score_table(df, comp, threads=1), len(df))
T("table_complete_1thread", lambda: sc.score_table(full, comp, threads=1), len(df))
T("table_missing_1thread_explain", lambda: sc.score_table(df, comp, threads=1, explain=True), len(df))
def dicts():
    for s in range(0, len(recs), 100):
        sc.score(recs[s:s + 100], comp)
T("score_requests_of_100", dicts, len(recs))
T("score_single_x300", lambda: [sc.score([r], comp) for r in recs[:300]], 300)
T("score_single_network_node_x100", lambda: [sc.score([r], "manual_therapy") for r in recs[:100]], 100)
out["load"] = os.getloadavg()[0]
print(json.dumps(out))
