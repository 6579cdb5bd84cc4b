# One client sending 3000 requests, each with a new X-Api-Key (rotating keys to reset its bucket),
# then 30 requests with one fixed key; prints the status counts of each part.
import http.client, collections
c = http.client.HTTPConnection("127.0.0.1", 18080)
def run(keys):
    counts = collections.Counter()
    for k in keys:
        c.request("GET", "/health", headers={"X-Api-Key": k}); r = c.getresponse(); r.read(); counts[r.status] += 1
    return dict(counts)
print("3000 requests, a new key each:", run([f"k{i}" for i in range(3000)]))
print("30 requests, one key:", run(["fixed"] * 30))
