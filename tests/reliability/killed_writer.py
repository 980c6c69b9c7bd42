"""A writer process for the SIGKILL test: writes a deterministic stream, reports commits.

Reading number ``k`` goes to series ``k % 200`` at ``T0 + 10 * (k // 200)`` s with value
``k``. On start it resumes at the number of points already stored (each batch commits
whole or not at all, so that count is always a prefix of the stream). After every
``write`` returns it prints ``<committed total> <last ts>`` and flushes: a printed line
is a promise that those readings are durable.

Usage: python killed_writer.py DB SEED
"""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path

from gateway.store.sqlite import TelemetryStore
from gateway.types import Reading

T0 = 1_767_225_600.0
SERIES = 200


def reading(k: int) -> Reading:
    s = k % SERIES
    return Reading(f"dev-{s // 4}", f"m{s % 4}", float(k), T0 + 10 * (k // SERIES))


async def main(path: Path, seed: int) -> None:
    rng = random.Random(seed)
    store = TelemetryStore(path, outbox=True)
    k = store.count_sync()
    while True:
        n = rng.randint(50, 2000)
        batch = [reading(i) for i in range(k, k + n)]
        await store.write(batch)
        k += n
        print(k, batch[-1].at, flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
