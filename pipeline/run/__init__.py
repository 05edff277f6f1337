"""One run, sequenced: the engines that run its batches, its bookkeeping, its summary and metrics."""
