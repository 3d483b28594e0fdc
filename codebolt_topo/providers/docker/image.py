"""Which image a docker node runs, and a clear answer when it is not there.

The default is ``codebolt-node:<version>``, the tag ``scripts/build-node-image.sh`` (or a plain
``docker build -t codebolt-node:<version> .``) produces, so the daemon in the container speaks the
same protocol version as the orchestrator. A missing default image is never pulled: it is ours
to build. Any other image is pulled once when absent, which fails fast without a registry.
"""

from __future__ import annotations

from collections.abc import Callable

from codebolt_topo import __version__
from codebolt_topo.errors import ProviderError
from codebolt_topo.model.topology import NodeSpec
from codebolt_topo.providers.docker.engine import DockerEngine, engine_errors, in_thread
from codebolt_topo.providers.docker.settings import ContainerSettings

__all__ = ["DEFAULT_IMAGE", "ensure_image"]

DEFAULT_IMAGE = f"codebolt-node:{__version__}"
BUILD_HINT = "build it with scripts/build-node-image.sh (or: docker build -t {image} .)"


@engine_errors
def _pull(engine: DockerEngine, image: str) -> None:
    engine.client.images.pull(image)


async def ensure_image(
    engine: DockerEngine,
    spec: NodeSpec,
    node: str,
    step: Callable[[str], None] = lambda what: None,
) -> str:
    """The image reference for ``spec``, present in the engine, or a ProviderError saying why;
    ``step`` is told when the image is pulled (the long case)."""
    image = ContainerSettings.of(spec).image or DEFAULT_IMAGE
    if await in_thread(engine.has_image, image):
        return image
    if image == DEFAULT_IMAGE:
        raise ProviderError(
            f"node {node!r}: image {image} is not in the Docker Engine; "
            + BUILD_HINT.format(image=image)
        )
    step(f"pulling {image}")
    try:
        await in_thread(_pull, engine, image)
    except ProviderError as error:
        raise ProviderError(f"node {node!r}: image {image} is not present and {error}") from None
    return image
