"""Phases of each proxied exchange from a proxy's system calls (bench/request-phases.sh).

stdin: `perf script --ns -F tid,time,event,trace` of the read/recvfrom (enter and exit),
write/writev and epoll_wait (enter and exit) tracepoints; argv[1]: lines "FD client" or
"FD upstream" naming the proxy's descriptors. Only the busiest thread (the event loop)
is followed. Forward pairs an upstream write with the client read just before it, back a
client write with the upstream read just before it (each read pairs once): a
one-threaded proxy forwards a request as it reads it, so a pair is one exchange, and a
write with no read before it (a health probe's) is not counted.
"""
import collections
import re
import sys

kinds = {}
for line in open(sys.argv[1]):
    fd, kind = line.split()
    kinds[int(fd)] = kind

pattern = re.compile(r"\s*(\d+)\s+([\d.]+):\s+syscalls:(\w+):\s*(.*)")
rows = []
per_tid = collections.Counter()
for line in sys.stdin:
    m = pattern.match(line)
    if m:
        rows.append((int(m[1]), float(m[2]), m[3], m[4]))
        per_tid[int(m[1])] += 1
if not rows:
    sys.exit("no events recorded")
loop = per_tid.most_common(1)[0][0]

phases = {name: [] for name in ("wait", "forward", "upstream", "back", "inside", "cycle")}
# The same phases counted in event-loop iterations (epoll_waits between the two ends).
turns = {name: collections.Counter() for name in ("wait", "upstream", "inside")}
iteration = 0
client_read_turn, client_written_turn, upstream_sent_turn = {}, {}, {}
# Where in its iteration each kind of read falls (0 = first after epoll_wait, 1 = last).
position = {"client": [], "upstream": []}
iteration_reads = []
events_per_wait, between_waits, in_wait = [], [], []
pending_fd = None          # the descriptor of the read/recvfrom being waited for
client_read, client_written, upstream_sent, client_cycle = {}, {}, {}, {}
last_client_read = last_upstream_read = None  # not yet paired with a write
wait_entered = last_wait_exit = None
reads = writes = 0

def kind_of(fd):
    """The map's kind; a descriptor it does not name was opened while recording: a client
    connection if it was accepted, else one to an upstream (nginx replaces its upstream
    connections every 1 000 requests, its upstream `keepalive_requests` default)."""
    if fd not in kinds:
        kinds[fd] = "client" if fd in accepted_ever else "upstream"
    return kinds[fd]
accepted_ever = set()
# Connections accepted while recording (FROM_START=1): accept -> first request read.
accepted, first_read, accepts_per_iteration, accepts_this_iteration = {}, [], [], 0
first_time = None
cycles_by_window = collections.defaultdict(list)  # 250 ms windows from the first event

def arg(trace, name):
    return int(re.search(name + r": (0x[0-9a-f]+)", trace)[1], 16)

for tid, t, event, trace in rows:
    if tid != loop:
        continue
    if first_time is None:
        first_time = t
    if event in ("sys_enter_read", "sys_enter_recvfrom"):
        pending_fd = arg(trace, "fd")
    elif event in ("sys_exit_read", "sys_exit_recvfrom"):
        ret = int(trace, 16)
        fd, pending_fd = pending_fd, None
        if fd is None or ret == 0 or ret >= 1 << 63:  # EOF or an error (EAGAIN)
            continue
        reads += 1
        iteration_reads.append(kind_of(fd))
        if kind_of(fd) == "client":
            if fd in client_written:
                phases["wait"].append(t - client_written.pop(fd))
                turns["wait"][iteration - client_written_turn.pop(fd)] += 1
            if fd in accepted:
                first_read.append(t - accepted.pop(fd))
            if fd in client_cycle:
                phases["cycle"].append(t - client_cycle[fd])
                cycles_by_window[int((t - first_time) / 0.25)].append(t - client_cycle[fd])
            client_cycle[fd] = t
            client_read[fd] = t
            client_read_turn[fd] = iteration
            last_client_read = t
        elif kind_of(fd) == "upstream" and fd in upstream_sent:
            phases["upstream"].append(t - upstream_sent.pop(fd))
            turns["upstream"][iteration - upstream_sent_turn.pop(fd)] += 1
            last_upstream_read = t
    elif event in ("sys_enter_write", "sys_enter_writev"):
        fd = arg(trace, "fd")
        writes += 1
        if kind_of(fd) == "client":
            if fd in client_read:
                phases["inside"].append(t - client_read.pop(fd))
                turns["inside"][iteration - client_read_turn.pop(fd)] += 1
            if last_upstream_read is not None:
                phases["back"].append(t - last_upstream_read)
                last_upstream_read = None
            client_written[fd] = t
            client_written_turn[fd] = iteration
        elif kind_of(fd) == "upstream":
            upstream_sent[fd] = t
            upstream_sent_turn[fd] = iteration
            if last_client_read is not None:
                phases["forward"].append(t - last_client_read)
                last_client_read = None
    elif event in ("sys_exit_accept4", "sys_exit_accept"):
        ret = int(trace, 16)
        if ret < 1 << 63:
            accepted[ret] = t
            accepted_ever.add(ret)
            accepts_this_iteration += 1
    elif event == "sys_enter_epoll_wait":
        wait_entered = t
    elif event == "sys_exit_epoll_wait":
        events_per_wait.append(int(trace, 16))
        for i, kind in enumerate(iteration_reads):
            if kind in position:
                position[kind].append(i / max(1, len(iteration_reads) - 1))
        iteration_reads = []
        iteration += 1
        if accepts_this_iteration:
            accepts_per_iteration.append(accepts_this_iteration)
        accepts_this_iteration = 0
        if wait_entered is not None:
            in_wait.append(t - wait_entered)
        if last_wait_exit is not None:
            between_waits.append(t - last_wait_exit)
        last_wait_exit = t

def summary(values, scale=1e6):
    if not values:
        return "(none)"
    v = sorted(values)
    q = lambda p: v[min(len(v) - 1, int(p * len(v)))] * scale
    mean = sum(v) / len(v) * scale
    return f"n {len(v):7}  mean {mean:8.1f}  p50 {q(.5):8.1f}  p90 {q(.9):8.1f}  p99 {q(.99):8.1f}  p99.9 {q(.999):8.1f}"

print(f"  event-loop thread {loop}: {reads} reads with data, {writes} writes, "
      f"{sum(1 for k in kinds.values() if k == 'client')} client and "
      f"{sum(1 for k in kinds.values() if k == 'upstream')} upstream connections")
for name, values in phases.items():
    print(f"  {name:8} µs  {summary(values)}")
print(f"  events per epoll_wait  {summary(events_per_wait, 1)}")
print(f"  µs between epoll_waits {summary(between_waits)}")
print(f"  µs inside epoll_wait   {summary(in_wait)}")
for name, counts in turns.items():
    total = sum(counts.values())
    shares = "  ".join(f"{k}: {counts[k] * 100 / total:5.1f} %" for k in sorted(counts)[:5])
    print(f"  {name:8} iterations later  {shares}")
for kind, values in position.items():
    print(f"  {kind:8} reads' place in their iteration (0 first, 1 last)  {summary(values, 1)}")
if accepts_per_iteration:
    print(f"  accepted while recorded: {sum(accepts_per_iteration)} in {len(accepts_per_iteration)} iterations")
    print(f"  accepts per iteration  {summary(accepts_per_iteration, 1)}")
    print(f"  µs accept -> first read {summary(first_read)}")
    for window in sorted(cycles_by_window)[:8]:
        print(f"  cycle µs {window * 250:5}-{window * 250 + 250} ms  {summary(cycles_by_window[window])}")
