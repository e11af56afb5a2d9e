"""Performance profiling: latency, throughput, load, memory, deployment targets."""
