"""workflows: FireWorks workflow builders, firetasks, LaunchPad handling and the ``pes`` CLI."""
