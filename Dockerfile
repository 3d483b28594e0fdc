# The codebolt node image: the project in a virtual environment, run as a non-root user, with the
# node daemon as entrypoint and /workspace as the working directory (a volume). It holds the core
# install: a node daemon needs no provider SDK (docker, asyncssh and e2b are extras of the
# machine that applies topologies; a child topology applied from a node runs local nodes).
#
#   docker build .                                   # from python:3.11-slim, installs from PyPI
#   scripts/build-node-image.sh                      # no registry: debootstrapped base + wheelhouse
#
# BASE is any image with python3 (>= 3.11, with venv). With a wheelhouse in the build context
# (build/wheelhouse/deps: every dependency, build/wheelhouse/project: this project's wheel, as
# scripts/build-node-image.sh lays it out), nothing is fetched from the network during the build.
# Dependencies are installed in their own layer, so a code change reinstalls only the project.
ARG BASE=python:3.11-slim
FROM ${BASE}

# A fixed uid, so sandbox settings and file ownership do not depend on the base's passwd file.
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/codebolt --shell /bin/sh codebolt \
    && mkdir -p /workspace && chown codebolt:codebolt /workspace

# iptables sets a sandbox node's egress firewall (from a helper container sharing its network
# namespace; see codebolt_topo/providers/docker/firewall.py). The registry-free base has it.
RUN command -v iptables >/dev/null || { apt-get update -q \
        && apt-get install -y -q --no-install-recommends iptables \
        && rm -rf /var/lib/apt/lists/*; }

# pyproject.toml always matches, so the build works without a wheelhouse; dep[s] matches only
# when the wheelhouse exists and copies its wheels.
COPY pyproject.toml build/wheelhouse/dep[s] /wheels/deps/
RUN set -eu; \
    python3 -m venv /opt/codebolt; \
    if ls /wheels/deps/*.whl >/dev/null 2>&1; then \
        /opt/codebolt/bin/pip install --quiet --no-index --no-deps /wheels/deps/*.whl; \
    fi; \
    rm -rf /wheels

# Settings before the project's layer: with the legacy builder every step after a changed one
# is recommitted, so the steps that change with the code come last and are few.
ENV PATH=/opt/codebolt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LANG=C.UTF-8
WORKDIR /workspace
VOLUME ["/workspace"]
EXPOSE 3100
# Without CODEBOLT_LAUNCH_CONFIG this is exactly `python -m codebolt_topo.node --config PATH`.
ENTRYPOINT ["python", "-m", "codebolt_topo.providers.docker.container_main"]

COPY . /src
RUN set -eu; \
    if ls /src/build/wheelhouse/project/*.whl >/dev/null 2>&1; then \
        /opt/codebolt/bin/pip install --quiet --no-index --no-deps /src/build/wheelhouse/project/*.whl; \
        /opt/codebolt/bin/pip check; \
    else \
        /opt/codebolt/bin/pip install --quiet /src; \
    fi; \
    rm -rf /src; \
    /opt/codebolt/bin/python -c "import codebolt_topo.node, codebolt_topo.providers.docker.container_main"

USER 10001:10001
