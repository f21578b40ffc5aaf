"""Lift fits beside the scoring runs: ``<outputs>/lift/<fit_id>/lift.json`` (the
``LiftModel``, with the runs it came from, its intervals and its prior), ``lift.png`` (the
curve per channel) and ``latest.json``, pointing at the fit the next scoring run uses.

A fit is written in a private folder renamed into place, then the pointer is replaced: a
crash leaves the previous fit live.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import orjson

from serving.policy.lift import LiftModel

POINTER = "latest.json"


def lift_dir(outputs_dir: Path) -> Path:
    return outputs_dir / "lift"


def save_fit(model: LiftModel, outputs_dir: Path) -> Path:
    """Write ``model`` and its plot, and make it the live fit; its folder."""
    root = lift_dir(outputs_dir)
    root.mkdir(parents=True, exist_ok=True)
    target = root / model.fit_id
    staging = root / f".{model.fit_id}.{os.getpid()}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    (staging / "lift.json").write_bytes(orjson.dumps(model.to_dict(), option=orjson.OPT_INDENT_2))
    _plot(model, staging / "lift.png")
    shutil.rmtree(target, ignore_errors=True)
    staging.replace(target)
    pointer = root / f".{POINTER}.{os.getpid()}.tmp"
    pointer.write_bytes(orjson.dumps({"fit_id": model.fit_id, "dir": str(target)}))
    pointer.replace(root / POINTER)
    return target


def latest_fit(outputs_dir: Path) -> LiftModel | None:
    """The live fit, or None before the first."""
    pointer = lift_dir(outputs_dir) / POINTER
    if not pointer.is_file():
        return None
    folder = Path(orjson.loads(pointer.read_bytes())["dir"])
    return LiftModel.from_dict(orjson.loads((folder / "lift.json").read_bytes()))


def _plot(model: LiftModel, path: Path) -> None:
    """Each channel's Δp by score band with its interval, beside the assumption."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(model.channels) or ["email"]
    figure, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), squeeze=False)
    for axis, name in zip(axes[0], names, strict=True):
        lift = model.channels.get(name)
        if lift is not None:
            middle = list(range(len(lift.bands)))
            axis.set_xticks(middle, [f"{b.lo:.3g}-{b.hi:.3g}" for b in lift.bands], rotation=30)
            measured = [
                (i, 100 * b.observed) for i, b in enumerate(lift.bands) if b.observed is not None
            ]
            if measured:
                axis.plot(*zip(*measured, strict=True), "s", color="grey", label="measured")
            axis.errorbar(
                middle,
                [100 * b.delta for b in lift.bands],
                yerr=[
                    [100 * (b.delta - b.low) for b in lift.bands],
                    [100 * (b.high - b.delta) for b in lift.bands],
                ],
                fmt="o-",
                capsize=3,
                label="learned",
            )
            axis.plot(middle, [100 * b.prior for b in lift.bands], "x--", label="prior")
        axis.axhline(0, color="grey", linewidth=0.8)
        axis.set(title=name, xlabel="score band", ylabel="Δp (pp)")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
