"""Python's multiprocessing side of multiproc's comparison command.

Runs the scenarios of multiproc-bench/src/lib.rs with the standard library
only and prints one `name<TAB>median seconds` line per scenario.

    python3 bench.py [--filter TEXT] [--quick]
"""

import argparse
import multiprocessing as mp
import statistics
import time


def trivial():
    pass


def start_join(ctx):
    def run():
        p = ctx.Process(target=trivial)
        start = time.perf_counter()
        p.start()
        p.join()
        return time.perf_counter() - start

    return run


LOCK_BATCH = 100_000
INCREMENTS = 100_000
ROUND_TRIPS = 2_000


def lock_unlock():
    lock = mp.Lock()
    start = time.perf_counter()
    for _ in range(LOCK_BATCH):
        lock.acquire()
        lock.release()
    return (time.perf_counter() - start) / LOCK_BATCH


def add_under_lock(counter):
    for _ in range(INCREMENTS):
        with counter.get_lock():
            counter.value += 1


def value_increments_two_processes():
    ctx = mp.get_context("fork")
    counter = ctx.Value("q", 0)
    start = time.perf_counter()
    child = ctx.Process(target=add_under_lock, args=(counter,))
    child.start()
    add_under_lock(counter)
    child.join()
    elapsed = time.perf_counter() - start
    assert counter.value == 2 * INCREMENTS
    return elapsed / (2 * INCREMENTS)


def pong(ping, pong_event):
    for _ in range(ROUND_TRIPS):
        ping.wait()
        ping.clear()
        pong_event.set()


def event_ping_pong():
    ctx = mp.get_context("fork")
    ping, pong_event = ctx.Event(), ctx.Event()
    child = ctx.Process(target=pong, args=(ping, pong_event))
    child.start()
    start = time.perf_counter()
    for _ in range(ROUND_TRIPS):
        ping.set()
        pong_event.wait()
        pong_event.clear()
    elapsed = time.perf_counter() - start
    child.join()
    return elapsed / ROUND_TRIPS


def echo(inq, outq):
    while True:
        n = inq.get()
        if n is None:
            return
        outq.put(n)


def queue_round_trip():
    ctx = mp.get_context("fork")
    there, back = ctx.Queue(), ctx.Queue()
    child = ctx.Process(target=echo, args=(there, back))
    child.start()
    n = 2000
    start = time.perf_counter()
    for i in range(n):
        there.put(i)
        assert back.get() == i
    elapsed = time.perf_counter() - start
    there.put(None)
    child.join()
    return elapsed / n


def drain(q, n, size, ready):
    ready.set()
    for _ in range(n):
        assert len(q.get()) == size


def one_way(size, n):
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    ready = ctx.Event()
    child = ctx.Process(target=drain, args=(q, n, size, ready))
    child.start()
    message = bytes(size)
    # The clock starts once the reader runs, as in the Rust rows.
    assert ready.wait(30), "the reader did not start"
    start = time.perf_counter()
    for _ in range(n):
        q.put(message)
    child.join()
    return (time.perf_counter() - start) / n


def pipe_echo(conn, other_end):
    other_end.close()  # inherited by fork: keep only ours, or EOF never comes
    while True:
        try:
            n = conn.recv()
        except EOFError:
            return
        conn.send(n)


def pipe_round_trip():
    ctx = mp.get_context("fork")
    mine, theirs = ctx.Pipe()
    child = ctx.Process(target=pipe_echo, args=(theirs, mine))
    child.start()
    n = 5000
    start = time.perf_counter()
    for i in range(n):
        mine.send(i)
        assert mine.recv() == i
    elapsed = time.perf_counter() - start
    mine.close()
    theirs.close()
    child.join()
    return elapsed / n


def pipe_drain(conn, n, size, ready):
    ready.set()
    for _ in range(n):
        assert len(conn.recv()) == size


def pipe_one_way(size, n):
    ctx = mp.get_context("fork")
    mine, theirs = ctx.Pipe()
    ready = ctx.Event()
    child = ctx.Process(target=pipe_drain, args=(theirs, n, size, ready))
    child.start()
    message = bytes(size)
    # The clock starts once the reader runs, as in the Rust rows.
    assert ready.wait(30), "the reader did not start"
    start = time.perf_counter()
    for _ in range(n):
        mine.send(message)
    child.join()
    return (time.perf_counter() - start) / n


def client_echo(address):
    from multiprocessing.connection import Client
    conn = Client(address, authkey=b"bench")
    while True:
        try:
            n = conn.recv()
        except EOFError:
            return
        conn.send(n)


def listener_round_trip(address, family):
    from multiprocessing.connection import Listener
    ctx = mp.get_context("fork")
    with Listener(address, family=family, authkey=b"bench") as listener:
        child = ctx.Process(target=client_echo, args=(listener.address,))
        child.start()
        conn = listener.accept()
        n = 5000
        start = time.perf_counter()
        for i in range(n):
            conn.send(i)
            assert conn.recv() == i
        elapsed = time.perf_counter() - start
        conn.close()
        child.join()
    return elapsed / n


MANAGER_OPS = 2000
# Seconds of untimed operations before a manager sample is timed.
MANAGER_WARM_UP = 0.02
# Appends per process in the two-appender scenario (as in the Rust one).
APPENDS_EACH = 20_000


def manager_op(what, address=None):
    """Time per proxy operation of one kind, from the main process."""
    def run():
        if address is None:
            manager = mp.get_context("fork").Manager()
        else:
            from multiprocessing.managers import SyncManager
            manager = SyncManager(address=address, authkey=b"bench", ctx=mp.get_context("fork"))
            manager.start()
        with manager:
            lst, dct, ns = manager.list(), manager.dict(), manager.Namespace()
            ns.x = 0
            dct["k"] = 0
            ops = {
                "list append": lambda i: lst.append(i),
                "dict set": lambda i: dct.__setitem__("k", i),
                "dict get": lambda i: dct["k"],
                "namespace set": lambda i: setattr(ns, "x", i),
                "namespace get": lambda i: ns.x,
            }
            op = ops[what]
            # Untimed warm-up, as on the Rust side: the steady state counts.
            warm = time.perf_counter()
            while time.perf_counter() - warm < MANAGER_WARM_UP:
                op(0)
            start = time.perf_counter()
            for i in range(MANAGER_OPS):
                op(i)
            return (time.perf_counter() - start) / MANAGER_OPS

    return run


def append_n(lst, n, go):
    go.wait()
    for i in range(n):
        lst.append(i)


def manager_two_appenders():
    ctx = mp.get_context("fork")
    with ctx.Manager() as manager:
        lst, go = manager.list(), ctx.Event()
        n = APPENDS_EACH
        workers = [ctx.Process(target=append_n, args=(lst, n, go)) for _ in range(2)]
        for w in workers:
            w.start()
        start = time.perf_counter()
        go.set()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - start
        assert len(lst) == 2 * n
        return elapsed / (2 * n)


LATENCY_TRIPS = 20_000
WARM_UP = 0.030  # seconds of untimed round trips first (as the Rust rows)


def timed_trips(one):
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < WARM_UP:
        one(n)
        n += 1
    times = []
    for i in range(n, n + LATENCY_TRIPS):
        t = time.perf_counter()
        one(i)
        times.append(time.perf_counter() - t)
    return times


def latency_event():
    ctx = mp.get_context("fork")
    ping, pong_event = ctx.Event(), ctx.Event()

    stop = ctx.Event()

    def pong_n():
        while True:
            ping.wait()
            ping.clear()
            if stop.is_set():
                return
            pong_event.set()

    child = ctx.Process(target=pong_n)
    child.start()

    def one(_):
        ping.set()
        pong_event.wait()
        pong_event.clear()

    times = timed_trips(one)
    stop.set()
    ping.set()
    child.join()
    return times


def latency_queue():
    ctx = mp.get_context("fork")
    there, back = ctx.Queue(), ctx.Queue()
    child = ctx.Process(target=echo, args=(there, back))
    child.start()
    def one(i):
        there.put(i)
        assert back.get() == i

    times = timed_trips(one)
    there.put(None)
    child.join()
    return times


def latency_pipe():
    ctx = mp.get_context("fork")
    mine, theirs = ctx.Pipe()
    child = ctx.Process(target=pipe_echo, args=(theirs, mine))
    child.start()
    def one(i):
        mine.send(i)
        assert mine.recv() == i

    times = timed_trips(one)
    mine.close()
    theirs.close()
    child.join()
    return times


def latencies():
    return [
        ("queue: round trip of a small message", latency_queue),
        ("pipe: round trip of a small message", latency_pipe),
        ("event: ping-pong round trip, 2 processes", latency_event),
    ]


def percentile(times, p):
    times = sorted(times)
    return times[min(len(times) - 1, round(p / 100 * (len(times) - 1)))]


def pycsp_commstime(cycles=2000):
    """PyCSP's Commstime (its greenlets flavour, the one that runs on
    Python 3.11: `pycsp.parallel` fails at start there): the time per
    channel communication. None if PyCSP is not installed."""
    try:
        import pycsp.greenlets as csp
    except ImportError:
        return None

    @csp.process
    def prefix(cin, cout, first):
        cout(first)
        while True:
            cout(cin())

    @csp.process
    def delta(cin, cout1, cout2):
        while True:
            v = cin()
            cout1(v)
            cout2(v)

    @csp.process
    def successor(cin, cout):
        while True:
            cout(cin() + 1)

    result = []

    @csp.process
    def consumer(cin):
        for _ in range(cycles):
            cin()
        start = time.perf_counter()
        for _ in range(cycles):
            cin()
        result.append((time.perf_counter() - start) / (cycles * 4))
        csp.poison(cin)

    a, b, c, d = (csp.Channel() for _ in range(4))
    csp.Parallel(prefix(+d, -a, 0), delta(+a, -b, -c), successor(+c, -d), consumer(+b))
    return result[0]


def sq(x):
    return x * x


_POOL = None


def shared_pool():
    """The 2-worker pool the pool rows share, started once (fork)."""
    global _POOL
    if _POOL is None:
        _POOL = mp.get_context("fork").Pool(2)
    return _POOL


def pool_map_default():
    pool = shared_pool()
    start = time.perf_counter()
    v = pool.map(sq, range(100_000))
    elapsed = time.perf_counter() - start
    assert v[99_999] == 99_999 * 99_999
    return elapsed


def pool_map_chunksize_one(n=20_000):
    pool = shared_pool()
    start = time.perf_counter()
    v = pool.map(sq, range(n), chunksize=1)
    elapsed = time.perf_counter() - start
    assert len(v) == n
    return elapsed / n


def pool_imap(n=20_000):
    pool = shared_pool()
    start = time.perf_counter()
    count = sum(1 for _ in pool.imap(sq, range(n)))
    elapsed = time.perf_counter() - start
    assert count == n
    return elapsed / n


def pool_apply_async(n=2_000):
    pool = shared_pool()
    start = time.perf_counter()
    for i in range(n):
        assert pool.apply_async(sq, (i,)).get() == i * i
    return (time.perf_counter() - start) / n


def pool_start_spawn():
    start = time.perf_counter()
    pool = mp.get_context("spawn").Pool(2)
    pool.close()
    pool.join()
    return time.perf_counter() - start


def scenarios():
    return [
        ("process: start + join, spawn", 20, start_join(mp.get_context("spawn"))),
        ("process: start + join, forkserver", 100, start_join(mp.get_context("forkserver"))),
        ("process: start + join, fork", 100, start_join(mp.get_context("fork"))),
        ("lock: uncontended lock + unlock", 10, lock_unlock),
        ("value: locked increment, 2 processes (time per increment)", 5, value_increments_two_processes),
        ("event: ping-pong round trip, 2 processes", 5, event_ping_pong),
        ("queue: round trip of a small message", 5, queue_round_trip),
        ("queue: one-way 64-byte messages (time per message)", 3, lambda: one_way(64, 100_000)),
        ("queue: one-way 1 MiB messages (time per message)", 3, lambda: one_way(1 << 20, 300)),
        ("pipe: round trip of a small message", 5, pipe_round_trip),
        ("pipe: one-way 64-byte messages (time per message)", 3, lambda: pipe_one_way(64, 100_000)),
        ("pipe: one-way 1 MiB messages (time per message)", 3, lambda: pipe_one_way(1 << 20, 300)),
        ("manager: list append", 5, manager_op("list append")),
        ("manager: dict set", 5, manager_op("dict set")),
        ("manager: dict get", 5, manager_op("dict get")),
        ("manager: namespace set", 5, manager_op("namespace set")),
        ("manager: namespace get", 5, manager_op("namespace get")),
        ("manager: two processes appending to one list (time per append)", 5,
         manager_two_appenders),
        ("manager: remote over TCP loopback, list append", 5,
         manager_op("list append", ("127.0.0.1", 0))),
        ("connection: Listener/Client round trip, Unix socket", 5,
         lambda: listener_round_trip(None, "AF_UNIX")),
        ("connection: Listener/Client round trip, TCP loopback", 5,
         lambda: listener_round_trip(("127.0.0.1", 0), "AF_INET")),
        ("pool: map of 100,000 trivial tasks, default chunks, 2 workers", 10, pool_map_default),
        ("pool: map with chunksize 1, 2 workers (time per task)", 5, pool_map_chunksize_one),
        ("pool: imap, 2 workers (time per task)", 5, pool_imap),
        ("pool: apply_async + get, one at a time, 2 workers (time per task)", 5,
         pool_apply_async),
        ("pool: start 2 workers (spawn) + close + join", 5, pool_start_spawn),
    ]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--filter", default="")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--latency", type=int, default=0,
                        help="instead: this many round-robin runs of the latency rows, "
                             "printing name, run, p50 and p99 seconds")
    args = parser.parse_args()
    if args.latency:
        for run in range(args.latency):
            for name, measure in latencies():
                if args.filter not in name:
                    continue
                times = measure()
                print(f"{name}\t{run}\t{percentile(times, 50):.9f}\t{percentile(times, 99):.9f}",
                      flush=True)
        return
    rows = scenarios()
    if pycsp_commstime(10) is not None:
        rows.append(("csp: Commstime, threads (time per communication)", 5, pycsp_commstime))
        # PyCSP's greenlets are its light processes.
        rows.append(("csp: Commstime, light processes (time per communication)", 5,
                     pycsp_commstime))
    for name, samples, run in rows:
        if args.filter not in name:
            continue
        if args.quick:
            samples = max(5, samples // 10)
        for _ in range(max(2, samples // 10)):
            run()
        times = [run() for _ in range(samples)]
        print(f"{name}\t{statistics.median(times):.9f}", flush=True)


if __name__ == "__main__":
    main()
