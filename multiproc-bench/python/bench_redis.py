"""The Python anchors of multiproc's Redis rows, on the same redis-server.

    python3 bench_redis.py PORT RUNS

Prints `name<TAB>run<TAB>seconds per task` lines for:

- `celery`: 2,000 trivial tasks sent as one group (Celery's own fast
  path), 2 worker processes (prefork), Redis as broker and result backend;
- `rq`: 1,000 trivial jobs, 2 burst workers (`SimpleWorker`, no fork per
  job: RQ's fastest setting);

(redis-benchmark's LPUSH/RPOP anchor is run by the Rust side, just before
each run of the queue rows.)

Celery, RQ and the redis client are installed from PyPI into a virtual
environment of their own (target/bench-venv) on first use: standard library
plus those packages only.
"""

import os
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(HERE, "..", "..", "target", "bench-venv")
PY = os.path.join(VENV, "bin", "python")
CELERY_TASKS = 2_000
RQ_JOBS = 1_000


def venv():
    if not os.path.exists(PY):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run(
            [PY, "-m", "pip", "install", "-q", "celery==5.4.0", "kombu==5.4.2", "packaging", "redis==5.2.1", "rq==2.1.0"],
            check=True,
        )


TASKS_PY = """
from celery import Celery
app = Celery("bench", broker="redis://127.0.0.1:{port}/1", backend="redis://127.0.0.1:{port}/2")
app.conf.worker_prefetch_multiplier = 64
app.conf.result_expires = 600

@app.task
def sq(x):
    return x * x

def rq_sq(x):
    return x * x
"""

CELERY_CLIENT = """
import time, sys
sys.path.insert(0, {dir!r})
from tasks import sq
from celery import group
n = {n}
g = group(sq.s(i) for i in range(n))
start = time.perf_counter()
r = g.apply_async()
out = r.get(timeout=600)
elapsed = time.perf_counter() - start
assert out[-1] == (n - 1) ** 2
print(elapsed / n)
"""

RQ_CLIENT = """
import time, sys, subprocess, os
sys.path.insert(0, {dir!r})
from redis import Redis
from rq import Queue
from tasks import rq_sq
conn = Redis(port={port}, db=3)
q = Queue("bench", connection=conn)
n = {n}
jobs = [Queue.prepare_data(rq_sq, args=(i,), result_ttl=600) for i in range(n)]
start = time.perf_counter()
enq = q.enqueue_many(jobs)
workers = [subprocess.Popen([sys.executable, "-m", "rq.cli", "worker", "--burst", "-q",
            "-w", "rq.SimpleWorker", "--url", "redis://127.0.0.1:{port}/3", "bench"],
            cwd={dir!r}, env=dict(os.environ, PYTHONPATH={dir!r})) for _ in range(2)]
for w in workers:
    w.wait()
while not all(j.get_status(refresh=True) == "finished" for j in enq[-5:]):
    time.sleep(0.01)
elapsed = time.perf_counter() - start
assert enq[-1].return_value() == (n - 1) ** 2
print(elapsed / n)
"""


def celery(port, work):
    worker = subprocess.Popen(
        [PY, "-m", "celery", "-A", "tasks", "worker", "-c", "2", "-P", "prefork", "-l", "warning"],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONPATH=work),
    )
    try:
        time.sleep(3)  # the worker connects before the clock starts
        out = subprocess.run(
            [PY, "-c", CELERY_CLIENT.format(dir=work, n=CELERY_TASKS)],
            capture_output=True, text=True, timeout=900, check=True,
        )
        return float(out.stdout.strip().splitlines()[-1])
    finally:
        worker.terminate()
        worker.wait()


def rq(port, work):
    out = subprocess.run(
        [PY, "-c", RQ_CLIENT.format(dir=work, n=RQ_JOBS, port=port)],
        capture_output=True, text=True, timeout=900, check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main():
    port, runs = int(sys.argv[1]), int(sys.argv[2])
    venv()
    with tempfile.TemporaryDirectory() as work:
        with open(os.path.join(work, "tasks.py"), "w") as f:
            f.write(textwrap.dedent(TASKS_PY.format(port=port)))
        for run in range(1, runs + 1):
            print(f"celery\t{run}\t{celery(port, work)}", flush=True)
            print(f"rq\t{run}\t{rq(port, work)}", flush=True)


if __name__ == "__main__":
    main()
