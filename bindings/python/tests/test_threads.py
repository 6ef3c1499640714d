"""The GIL is released during library calls: other Python threads run meanwhile."""

import threading
import time

import numpy as np

import moeq


def test_other_threads_run_while_moeq_works():
    source = np.random.default_rng(0).standard_normal((4096, 4096), dtype=np.float32)
    started = time.perf_counter()
    moeq.quantize(source, nested=True)
    call_seconds = time.perf_counter() - started

    done = threading.Event()
    worker = threading.Thread(target=lambda: (moeq.quantize(source, nested=True), done.set()))
    ticks = []
    worker.start()
    while not done.is_set():
        ticks.append(time.perf_counter())
        time.sleep(0.001)
    worker.join()
    # Holding the GIL would stall this loop for the whole call.
    longest_stall = max(np.diff(ticks), default=0.0)
    assert len(ticks) > 3 and longest_stall < call_seconds / 2, (len(ticks), longest_stall, call_seconds)
