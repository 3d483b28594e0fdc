"""codebolt-topo: a topology.yaml becomes a live network of coordinated execution environments."""

__all__ = ["__version__"]

__version__ = "0.1.0"
