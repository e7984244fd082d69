"""What every job shares: the LaunchPad backends, local launches, firework runtime, spec base, reports, blobs."""
