#!/usr/bin/env python3
"""A long-lived pool worker through the CLI (no binding needed).

With `pool: true`, the runner starts `jobs` workers and feeds the task's
items through Redis; each worker asks for the next item until none is
left. Asking for the next item tells the runner the previous one is done;
if this worker dies instead, its current item goes back to the queue.

    tasks:
      work:
        pool: true
        jobs: 4
        foreach: {range: [0, 100]}
        run: [python3, examples/python/pool_worker.py]

`parallelrun next` prints the item and exits 0, exits 1 when no item is
left, and 2 or 3 on a usage or Redis error.
"""
import os
import subprocess
import sys

PARALLELRUN = os.environ.get("PARALLELRUN_BIN", "parallelrun")


def next_item():
    r = subprocess.run([PARALLELRUN, "next"], stdout=subprocess.PIPE,
                       text=True)
    if r.returncode == 1:
        return None
    if r.returncode != 0:
        sys.exit(r.returncode)  # parallelrun already said why on stderr
    return r.stdout[:-1] if r.stdout.endswith("\n") else r.stdout


def handle(item):
    return int(item) ** 2 if item.lstrip("-").isdigit() else len(item)


def main():
    done = 0
    while True:
        item = next_item()
        if item is None:
            break
        print(f"worker {os.environ.get('PARALLELRUN_INDEX')}: "
              f"{item} -> {handle(item)}", flush=True)
        done += 1
    print(f"worker {os.environ.get('PARALLELRUN_INDEX')} handled {done} items")


if __name__ == "__main__":
    main()
