"""Process plumbing every stage uses: retries, the run lock, signals, logging, progress, memory, AWS credentials."""
