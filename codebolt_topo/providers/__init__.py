"""Providers place nodes: local processes, containers, cloud sandboxes, VMs over SSH."""
