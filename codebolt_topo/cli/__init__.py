"""The ``codebolt`` command: parses arguments and renders results; logic lives elsewhere."""
