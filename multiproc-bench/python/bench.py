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


def drain(q, n, size):
    for _ in range(n):
        assert len(q.get()) == size


def one_way(size, n):
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    child = ctx.Process(target=drain, args=(q, n, size))
    child.start()
    message = bytes(size)
    start = time.perf_counter()
    for _ in range(n):
        q.put(message)
    child.join()
    return (time.perf_counter() - start) / n


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
    ]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--filter", default="")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    for name, samples, run in scenarios():
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
