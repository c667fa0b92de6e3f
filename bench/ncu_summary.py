#!/usr/bin/env python3
"""Per-kernel time of each phase in an ncu --print-summary per-kernel log (bench/gpu_profile.sh):
kernels grouped by name, total us = invocations x average duration, largest first.
  python3 bench/ncu_summary.py OUT/ncu.txt [rows]"""
import re,sys
txt=open(sys.argv[1]).read()
secs=re.split(r'^=== ncu (.*)$',txt,flags=re.M)
for i in range(1,len(secs),2):
    name=secs[i]; body=secs[i+1]
    rows=[]
    cur=None
    for line in body.splitlines():
        m=re.match(r'^\s\s(\S.*?) \((\d+), (\d+), (\d+)\)x\((\d+), (\d+), (\d+)\), Device \d+, CC [\d.]+, Invocations (\d+)',line)
        if m:
            cur=(m.group(1),(m.group(2),m.group(3),m.group(4)),int(m.group(8)))
            continue
        m=re.match(r'^\s+gpu__time_duration.sum\s+(\w+)\s+([\d.,]+)\s+([\d.,]+)\s+([\d.,]+)',line)
        if m and cur:
            unit=m.group(1); avg=float(m.group(4).replace(',',''))
            f={'ns':1e-3,'us':1,'ms':1e3,'usecond':1,'msecond':1e3,'nsecond':1e-3}.get(unit,1)
            rows.append((cur[0][:90],cur[1],cur[2],avg*f,cur[2]*avg*f)); cur=None
    tot=sum(r[4] for r in rows)
    print('####',name,' total us=%.0f'%tot)
    agg={}
    for r in rows:
        k=r[0].split('(')[0]
        a=agg.setdefault(k,[0,0.0]); a[0]+=r[2]; a[1]+=r[4]
    for k,(n,t) in sorted(agg.items(),key=lambda x:-x[1][1])[:int(sys.argv[2]) if len(sys.argv)>2 else 25]:
        print('%10.0f us %6d  %s'%(t,n,k))
