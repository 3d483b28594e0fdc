"""A training job for the gpu-offload example: fit y = 3x + 2, write the model as an artifact.

Runs unchanged anywhere: with PyTorch and a CUDA device it trains on the GPU; otherwise (the
stand-in node of the example) it runs the same gradient descent in pure Python. Either way it
prints one log line per epoch (they stream back to whoever sent the job) and writes
``artifacts/model.json`` and ``artifacts/metrics.json`` into the working directory, the node's
workspace, where ``codebolt exec --snapshot after`` records them.

Environment: EPOCHS (default 5), STEPS per epoch (default 200), LR (default 0.05).
"""

from __future__ import annotations

import json
import os
import platform
import random
import time
from pathlib import Path

EPOCHS = int(os.environ.get("EPOCHS", "5"))
STEPS = int(os.environ.get("STEPS", "200"))
LR = float(os.environ.get("LR", "0.05"))
OUT = Path("artifacts")


def dataset(n: int = 64) -> list[tuple[float, float]]:
    rng = random.Random(0)
    return [
        (x, 3.0 * x + 2.0 + rng.gauss(0.0, 0.01))
        for x in (rng.uniform(-1.0, 1.0) for _ in range(n))
    ]


def train_torch() -> tuple[float, float, list[float], str]:
    """Full-batch gradient descent on the GPU with PyTorch."""
    import torch as t

    device = t.device("cuda")
    data = dataset()
    x = t.tensor([[p[0]] for p in data], device=device)
    y = t.tensor([[p[1]] for p in data], device=device)
    model = t.nn.Linear(1, 1).to(device)
    optimiser = t.optim.SGD(model.parameters(), lr=LR)
    losses: list[float] = []
    for epoch in range(1, EPOCHS + 1):
        for _ in range(STEPS):
            optimiser.zero_grad()
            loss = t.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimiser.step()
        losses.append(float(loss.item()))
        print(f"epoch {epoch}/{EPOCHS} loss {losses[-1]:.6f}", flush=True)
    t.save(model.state_dict(), OUT / "model.pt")
    return (
        float(model.weight.item()),
        float(model.bias.item()),
        losses,
        f"cuda ({t.cuda.get_device_name(0)})",
    )


def train_python() -> tuple[float, float, list[float], str]:
    """The same full-batch gradient descent in pure Python (no GPU here)."""
    data = dataset()
    w = b = 0.0
    losses: list[float] = []
    for epoch in range(1, EPOCHS + 1):
        for _ in range(STEPS):
            gw = sum(2 * (w * x + b - y) * x for x, y in data) / len(data)
            gb = sum(2 * (w * x + b - y) for x, y in data) / len(data)
            w, b = w - LR * gw, b - LR * gb
        losses.append(sum((w * x + b - y) ** 2 for x, y in data) / len(data))
        print(f"epoch {epoch}/{EPOCHS} loss {losses[-1]:.6f}", flush=True)
    return w, b, losses, "cpu (pure-python stand-in)"


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def main() -> None:
    OUT.mkdir(exist_ok=True)
    node = os.environ.get("CODEBOLT_NODE", platform.node())
    use_cuda = cuda_available()
    print(
        f"training on node {node}, device {'cuda' if use_cuda else 'cpu (pure-python stand-in)'}",
        flush=True,
    )
    started = time.monotonic()
    w, b, losses, device = train_torch() if use_cuda else train_python()
    seconds = round(time.monotonic() - started, 3)
    (OUT / "model.json").write_text(json.dumps({"weight": w, "bias": b}, indent=2) + "\n")
    (OUT / "metrics.json").write_text(
        json.dumps(
            {
                "node": node,
                "device": device,
                "epochs": EPOCHS,
                "steps": STEPS,
                "losses": losses,
                "seconds": seconds,
            },
            indent=2,
        )
        + "\n"
    )
    print(
        f"done: weight {w:.3f} bias {b:.3f} -> artifacts/model.json, artifacts/metrics.json",
        flush=True,
    )


if __name__ == "__main__":
    main()
