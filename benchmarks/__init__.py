"""Throughput, latency and accuracy benchmarks; each writes JSON + Markdown to results/."""
