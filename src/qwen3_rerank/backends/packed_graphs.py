"""CUDA graphs for the packed forward: one captured graph per padded pack shape, replayed for every pack.

A forward of the 0.6B model launches ~600 kernels; launched one by one from Python they cost more host time
than a small pack's arithmetic. ``packing.pad_pack`` rounds every shape a pack has (ids, gathered keys,
segments, scored rows, the kernel's bounds) up to a few buckets, so a handful of graphs serve all packs.
Each graph owns static input tensors: a replay copies the pack's tensors into them (device to device) and
runs the whole forward as one launch. Graphs share one memory pool, which is safe because every replay runs
on one stream and its output is consumed (the LM-head rows) before the next replay.

Capture and replay must happen on one thread (the packed backend's device thread does all GPU work).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from .packed_layers import DeviceLayout

__all__ = ["GraphRunner"]


@dataclass
class _Captured:
    graph: Any
    inputs: DeviceLayout
    output: torch.Tensor


class GraphRunner:
    """Calls ``forward(layout)`` through a CUDA graph captured for ``layout.shape_key`` (captured on first use).

    Args:
        forward: the packed forward (eager or compiled); it must not synchronize with the host.
        max_graphs: shapes beyond this many run ``forward`` directly (each graph holds its activations'
            addresses; a workload of ever-new shapes must not grow memory without bound).
    """

    def __init__(self, forward: Callable[[DeviceLayout], torch.Tensor], max_graphs: int = 32) -> None:
        self.forward = forward
        self.max_graphs = max_graphs
        self.graphs: dict[tuple[int, ...], _Captured] = {}
        self.pool: Any = None
        #: replays and direct calls, for the benchmark's notes
        self.replays = 0
        self.uncaptured = 0

    def __call__(self, layout: DeviceLayout) -> torch.Tensor:
        key = layout.shape_key
        captured = self.graphs.get(key)
        if captured is None:
            if len(self.graphs) >= self.max_graphs:
                self.uncaptured += 1
                return self.forward(layout)
            captured = self.graphs[key] = self._capture(layout)
        for static, fresh in zip(captured.inputs.tensors(), layout.tensors(), strict=True):
            static.copy_(fresh, non_blocking=True)
        captured.graph.replay()
        self.replays += 1
        return captured.output

    def _capture(self, layout: DeviceLayout) -> _Captured:
        inputs = replace(
            layout,
            **{
                name: getattr(layout, name).clone()
                for name in ("ids", "positions", "key_index", "cu_q", "cu_k", "last")
            },
        )
        # Warm-up on a side stream (as torch.cuda.graphs asks): compiles and autotunes outside the capture.
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self.forward(inputs)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            output = self.forward(inputs)
        if self.pool is None:
            self.pool = graph.pool()
        return _Captured(graph, inputs, output)

    def clear(self) -> None:
        self.graphs.clear()
        self.pool = None
