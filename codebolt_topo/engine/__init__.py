"""Runs plans: the apply/destroy runner and the state file it keeps."""
