"""Child process of the memory measurement: load one model, run one batch, report peak RSS.

Run as a script, never imported: ``python _memory_child.py '<json request>'``. It imports only
numpy and the model's runtime (not compval), so the peak it reports is that of a process that
does nothing but serve the model. The request names the model file, its kind (``onnx``,
``torchscript``, ``torch_export``), an ``.npz`` file holding one batch, the input order (for
torch's positional inputs), the thread count and the ONNX Runtime providers. The last line of
stdout is a JSON object: ``peak_rss_bytes`` (peak resident set after the run, see
``_peak_rss``), ``ru_maxrss_bytes``, ``baseline_rss_bytes`` (the peak before loading the model,
after importing the runtime) and ``load_time_ms``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def _peak_rss() -> tuple[int, int]:
    """``(peak resident bytes of this process, ru_maxrss in bytes)``.

    Linux keeps ``ru_maxrss`` across ``execve`` and, when the parent spawns with fork or
    vfork, folds the parent's own peak into the child's: a child of a 2 GB profiling process
    would report 2 GB. ``VmHWM`` in ``/proc/self/status`` is the peak of this process's own
    address space since exec, so it is used where it exists; elsewhere ``ru_maxrss`` is the
    only measure (an upper bound).
    """
    import resource

    raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kibibytes, macOS bytes.
    maxrss = int(raw) if sys.platform == "darwin" else int(raw) * 1024
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024, maxrss
    except OSError:
        pass
    return maxrss, maxrss


def _run(request: dict[str, Any]) -> dict[str, float | int]:
    import numpy as np

    with np.load(request["inputs"], allow_pickle=False) as data:
        inputs = {name: data[name] for name in data.files}
    threads = request.get("threads")
    if request["kind"] == "onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        # As compval's ONNX Runtime adapter: sequential execution, no inter-op thread pool.
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        baseline, _ = _peak_rss()
        start = time.perf_counter_ns()
        session = ort.InferenceSession(
            request["model"], sess_options=options, providers=request.get("providers")
        )
        load_ns = time.perf_counter_ns() - start
        session.run(None, inputs)
    else:
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        baseline, _ = _peak_rss()
        start = time.perf_counter_ns()
        if request["kind"] == "torch_export":
            module = torch.export.load(request["model"]).module()
        else:
            module = torch.jit.load(request["model"], map_location="cpu")  # type: ignore[no-untyped-call]
        load_ns = time.perf_counter_ns() - start
        tensors = [torch.from_numpy(inputs[name]) for name in request["input_order"]]
        with torch.inference_mode():
            module(*tensors)
    peak, maxrss = _peak_rss()
    return {
        "peak_rss_bytes": peak,
        "ru_maxrss_bytes": maxrss,
        "baseline_rss_bytes": baseline,
        "load_time_ms": load_ns / 1e6,
    }


def main(argv: list[str]) -> int:
    """Entry point; returns the process exit status."""
    if len(argv) != 2:
        print("usage: _memory_child.py '<json request>'", file=sys.stderr)
        return 2
    result = _run(json.loads(argv[1]))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
