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


def scenarios():
    return [
        ("process: start + join, spawn", 20, start_join(mp.get_context("spawn"))),
        ("process: start + join, forkserver", 100, start_join(mp.get_context("forkserver"))),
        ("process: start + join, fork", 100, start_join(mp.get_context("fork"))),
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
