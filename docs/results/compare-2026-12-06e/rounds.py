# per-round reading of compare.txt and wrk-raw.txt (run in this folder: python3 rounds.py)
import re, statistics as st
rows = {}
for l in open('compare.txt'):
    m = re.match(r'\s+(\w+)\s+(\w+)\s+round (\d+):\s+(\d+) rps\s+p50\s+([\d.]+) ms\s+p99\s+([\d.]+) ms', l)
    if m:
        r, t, n, rps, p50, p99 = m.groups(); rows.setdefault(r, {}).setdefault(t, {})[int(n)] = (int(rps), float(p50), float(p99))
for r, ts in rows.items():
    print(r)
    for t in ts:
        v = ts[t]; print(f"  {t:9s} rps median {st.median(x[0] for x in v.values()):.0f}  p99 median {st.median(x[2] for x in v.values()):.2f}  p99 range {min(x[2] for x in v.values())}-{max(x[2] for x in v.values())}")
    ratios = [ts['fluxgate'][n][0] / ts['nginx'][n][0] for n in sorted(ts['nginx'])]
    print('  fluxgate/nginx requests per round', ' '.join(f'{x:.2f}' for x in ratios), '- ahead in', sum(x > 1 for x in ratios), 'of', len(ratios))
    p = [ts['fluxgate'][n][2] / ts['nginx'][n][2] for n in sorted(ts['nginx'])]
    print('  p99 fluxgate/nginx per round', ' '.join(f'{x:.2f}' for x in p), '- lower in', sum(x < 1 for x in p))
cur = None; data = {}
def ms(s):
    return float(s[:-2]) if s.endswith('ms') else float(s[:-2]) / 1000 if s.endswith('us') else float(s[:-1]) * 1000
for l in open('wrk-raw.txt'):
    m = re.match(r'### (\w+) (\w+) round (\d+)', l)
    if m: cur = m.groups(); data[cur] = {}; continue
    m = re.match(r'\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)', l)
    if m and cur: data[cur]['avg'], data[cur]['sd'], data[cur]['max'] = map(ms, m.groups())
    m = re.match(r'\s+(\d+)%\s+(\S+)', l)
    if m and cur: data[cur]['p' + m.group(1)] = ms(m.group(2))
print('\nwrk per round (ms): mean, standard deviation, p90, p99, max; p99 / mean')
for row in ['health64', 'health256']:
    print(row)
    for t in ['nginx', 'haproxy', 'fluxgate']:
        print(' ', t)
        for k in sorted(k for k in data if k[0] == row and k[1] == t):
            d = data[k]; print('    round %s  %.2f %.2f %.2f %.2f %.1f  %.2f' % (k[2], d['avg'], d['sd'], d['p90'], d['p99'], d['max'], d['p99'] / d['avg']))
