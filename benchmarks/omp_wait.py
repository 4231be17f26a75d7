"""Why scripts/test.sh sets OMP_WAIT_POLICY=PASSIVE and one OpenMP thread: torch processes that compute at the
same time.

The suite runs two pytest workers, and each starts ComfyUI and LLM servers of its own: several torch
processes compute at once on few cores. torch's OpenMP threads (libgomp) spin after each parallel
region while they wait for the next one, on cores another process needs. This runs the same small
UNet-like workload (a 320-channel convolution, linear layers, a little Python between them) in 1 and
in N concurrent processes, with libgomp's default wait policy, with PASSIVE, and with PASSIVE on one
thread a process (OMP_NUM_THREADS=1), and prints the seconds of each side by side.

    python benchmarks/omp_wait.py [--processes 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

WORK = """
import time, torch
conv, x = torch.nn.Conv2d(320, 320, 3, padding=1), torch.randn(1, 320, 32, 32)
lin, y = torch.nn.Linear(1024, 1024), torch.randn(64, 1024)
start = time.perf_counter()
with torch.no_grad():
    for _ in range(60):
        conv(x)
        for _ in range(20):
            lin(y)
        time.sleep(0.005)  # the Python between operators that a sampler loop has
print(time.perf_counter() - start)
"""


SIDES = {"default": {}, "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
         "PASSIVE, 1 thread": {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}}


def run(processes: int, side: dict[str, str]) -> float:
    """The slowest process's compute seconds (torch's import not counted)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")} | side
    procs = [subprocess.Popen([sys.executable, "-c", WORK], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(processes)]
    return max(float(p.communicate()[0]) for p in procs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2, help="concurrent processes (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is printed (default 3)")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'processes':>9} | " + " | ".join(f"{name + ' (s)':>21}" for name in SIDES))
    for n in sorted({1, args.processes}):
        seconds = []
        for side in SIDES.values():
            seconds.append(statistics.median(run(n, side) for _ in range(args.rounds)))
            time.sleep(1)
        print(f"{n:>9} | " + " | ".join(f"{s:>21.2f}" for s in seconds))


if __name__ == "__main__":
    main()
