"""Watermarks: Baseline 1 of the attribution paper and dataset watermarking with leak tracing (Wang et al.,
arXiv 2409.18897): schemes, detection, transforms, their zoo and study tables."""
