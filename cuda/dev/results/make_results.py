#!/usr/bin/env python3
"""Fold a run_all.sh output folder (attention.jsonl + summary.txt) into one committed JSON:
   python3 cuda/dev/results/make_results.py OUTDIR cuda/dev/results/attention-YYYY-MM-DD-h200.json [note]"""
import json, sys, re, datetime

src, dst = sys.argv[1], sys.argv[2]
note = sys.argv[3] if len(sys.argv) > 3 else ""
rows = [json.loads(l) for l in open(f"{src}/attention.jsonl") if l.strip()]
summary = open(f"{src}/summary.txt").read()
gpu = next((l[5:].strip() for l in summary.splitlines() if l.startswith("gpu: ")), "")

classes = {}
for r in rows:
    if r.get("kind") != "validate":
        continue
    c = classes.setdefault(f'{r["kernel"]}: {r["class"]}', {"cases": 0, "failed": 0, "max_abs": 0.0, "max_mean_abs": 0.0, "max_rel_l2": 0.0})
    c["cases"] += 1
    c["failed"] += 0 if r["ok"] else 1
    c["max_abs"] = max(c["max_abs"], r["max_abs"])
    c["max_mean_abs"] = max(c["max_mean_abs"], r["mean_abs"])
    c["max_rel_l2"] = max(c["max_rel_l2"], r["rel_l2"])
sanitizer = [l.strip() for l in summary.splitlines() if l.startswith("== memcheck") or l.startswith("== racecheck")]
out = {
    "what": "attention kernel lab (cuda/dev/run_all.sh): validate, benchmark, compute-sanitizer",
    "date": datetime.date.today().isoformat(),
    "gpu": gpu,
    "ceilings": {"copy_gbps": 4300, "bf16_tflops": 790},
    "tolerance": "bf16 vs fp32 CPU reference: max|err| <= 2e-2, mean|err| <= 2e-3, relL2 <= 1e-2; rope: <= 1 bf16 ulp per element",
    "note": note,
    "validate_classes": classes,
    "sanitizer": sanitizer,
    "bench": [r for r in rows if r.get("kind") == "bench"],
}
json.dump(out, open(dst, "w"), indent=1)
print(f"{dst}: {len(classes)} validate classes, {len(out['bench'])} bench rows, {len(sanitizer)} sanitizer lines")
