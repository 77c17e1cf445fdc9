"""How straight a trained flow's paths are, and how close few Euler steps come to many: for comparing functional flow
matching trained with independent and with minibatch-OT coupling (``--coupling ot``, docs/math.md §11).

    python benchmarks/flow_straightness.py runs/flow/checkpoint runs/flow-ot/checkpoint --num 64

Per checkpoint: the straightness ``S = mean_k ||v_k - (y_1 - y_0)||^2 / ||y_1 - y_0||^2`` along 64-step Euler
trajectories (0 for straight paths; Liu et al. 2023), and the RMS distance of 2-, 4- and 8-step Euler samples from the
64-step ones drawn from the same noise (the few-step error). The last line gives each later checkpoint's figures as a
ratio to the first's, measured in one run.
"""

import argparse

import torch

from funcdiff.processes import FlowProcess
from funcdiff.sampling import sample
from funcdiff.training import load_trained

FINE = 64
FEW = (2, 4, 8)


def measure(checkpoint: str, num: int, seed: int) -> tuple[float, list[float]]:
    """Straightness along 64-step Euler paths and the few-step RMS errors of one flow checkpoint."""
    model, process, _ = load_trained(checkpoint)
    if not isinstance(process, FlowProcess):
        raise SystemExit(f"{checkpoint} is not a flow")
    side = tuple(model.reference_shape)
    states = []

    def keep(tau: float, y: torch.Tensor, d: torch.Tensor) -> None:
        states.append(y.clone())

    generator = torch.Generator()
    start = process.prior(num, (process.domain.channels, *side), side, generator=generator.manual_seed(seed))
    fine = sample(model, process, side, batch=num, steps=FINE, sampler="euler", start=start,
                  options={"callback": keep}, generator=generator)
    path = torch.stack([start, *states])  # (FINE + 1, b, c, *spatial), evenly spaced in time
    chord = path[-1] - path[0]
    velocities = (path[1:] - path[:-1]) * FINE
    straightness = float(((velocities - chord).pow(2).flatten(2).sum(-1) / chord.pow(2).flatten(1).sum(-1)).mean())
    errors = [float((sample(model, process, side, batch=num, steps=k, sampler="euler", start=start) - fine).pow(2).mean().sqrt())
              for k in FEW]
    return straightness, errors


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--num", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [measure(c, args.num, args.seed) for c in args.checkpoints]
    print("checkpoint | straightness | RMS from 64 Euler steps at " + ", ".join(f"{k}" for k in FEW))
    for checkpoint, (s, errors) in zip(args.checkpoints, rows):
        print(f"{checkpoint} | {s:.4f} | " + ", ".join(f"{e:.4f}" for e in errors))
    for checkpoint, (s, errors) in zip(args.checkpoints[1:], rows[1:]):
        print(f"ratio {checkpoint} / {args.checkpoints[0]}: straightness {s / rows[0][0]:.2f}, few-step errors "
              + ", ".join(f"{e / b:.2f}" for e, b in zip(errors, rows[0][1])))


if __name__ == "__main__":
    main()
