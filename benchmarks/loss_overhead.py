"""How much does the MC-Loss cost?

(1) one training step (forward, backward, SGD) with CE + MC-Loss vs CE only, same
    ResNet-18 (600 = 200 x 3 MC channels, 14 x 14 at 224 px) and batch; goal <= 1.05.
(2) the vectorised loss (forward + backward) vs the slow loop reference of the tests
    (one step per sample and class, tests/reference.py), for N = 2048 channels split
    10/11 over 200 classes, 14 x 14, batch 16; goal >= 20x. Also printed: a stronger
    baseline that loops over classes only, batched over samples.

    python benchmarks/loss_overhead.py [--batch 8] [--size 224] [--repeats 5]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from _timing import interleaved
from mcviz import ChannelGroups, MCLoss, build_model, random_cwa_mask


def _tests_reference():
    """tests/reference.py, the slow loop implementation the tests check the loss against."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tests" / "reference.py"
    spec = importlib.util.spec_from_file_location("reference", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_reference = _tests_reference()
slow_discriminality, slow_diversity = _reference.slow_discriminality, _reference.slow_diversity


def reference_mc_loss(features, groups, target, keep, lam):
    """The tests' reference (tests/reference.py): a loop over samples and classes."""
    dis = F.cross_entropy(slow_discriminality(features, groups, keep), target)
    return dis - lam * slow_diversity(features, groups).mean()


def class_loop_mc_loss(features, groups, target, keep, lam):
    """A stronger baseline: one slice, pool and softmax per class, batched over samples."""
    b, n, h, w = features.shape
    x = features.flatten(2)
    dis_logits, hs = [], []
    for i in range(groups.num_classes):
        ch = groups.channels(i)
        kept = [c for c in ch if keep[c]]
        dis_logits.append(x[:, kept].max(dim=1).values.mean(dim=-1))
        hs.append(F.softmax(x[:, ch], dim=-1).max(dim=1).values.sum(dim=-1))
    dis = F.cross_entropy(torch.stack(dis_logits, 1), target)
    return dis - lam * torch.stack(hs, 1).mean()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    step_overhead(args)
    vectorised_against_loops(args)


def step_overhead(args) -> None:
    """(1) A training step with and without the MC-Loss."""
    model = build_model("resnet18", 200, xi=3).train()
    mc = MCLoss(model.groups).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 200, (args.batch,))

    def step(with_mc: bool):
        def run():
            f = model.features(x)
            loss = F.cross_entropy(model.head(f), y)
            if with_mc:
                loss = loss + 1.5 * mc(f, y).total
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return run

    t = interleaved({"ce": step(False), "ce+mc": step(True)}, repeats=args.repeats, warmup=1)
    r1 = t["ce+mc"] / t["ce"]
    print(
        f"(1) training step, resnet18 {args.size}px batch {args.batch}: CE {t['ce'] * 1e3:.0f} ms, "
        f"CE+MC {t['ce+mc'] * 1e3:.0f} ms, ratio {r1:.3f} (goal <= 1.05)"
    )


def vectorised_against_loops(args) -> None:
    """(2) The vectorised MC-Loss against the tests' loop reference and a loop over classes."""
    g = ChannelGroups.split(2048, 200)
    feats = torch.randn(16, 2048, 14, 14)
    target = torch.randint(0, 200, (16,))
    keep = random_cwa_mask(g, generator=torch.Generator().manual_seed(0))
    loss = MCLoss(g, lam=10.0).train()

    def fast():
        f = feats.clone().requires_grad_(True)
        loss(f, target, keep=keep).total.backward()

    keep_list = keep.tolist()

    def reference():
        f = feats.clone().requires_grad_(True)
        reference_mc_loss(f, g, target, keep, 10.0).backward()

    def class_loop():
        f = feats.clone().requires_grad_(True)
        class_loop_mc_loss(f, g, target, keep_list, 10.0).backward()

    # same numbers first
    a = loss(feats, target, keep=keep).total
    for ref in (reference_mc_loss(feats, g, target, keep, 10.0), class_loop_mc_loss(feats, g, target, keep_list, 10.0)):
        assert torch.allclose(a.double(), ref.double(), atol=1e-3), (a, ref)
    t = interleaved({"vectorised": fast, "class loop": class_loop}, repeats=args.repeats)
    # The reference takes minutes per call: timed once, after the others warmed the allocator.
    t.update(interleaved({"reference": reference}, repeats=1, warmup=0))
    print(
        f"(2) MC-Loss fwd+bwd, N=2048 over 200 classes (10/11), 14x14, batch 16: vectorised "
        f"{t['vectorised'] * 1e3:.1f} ms"
    )
    print(
        f"    vs the tests' loop reference (per sample and class) {t['reference'] * 1e3:.0f} ms: "
        f"{t['reference'] / t['vectorised']:.1f}x faster (goal >= 20x)"
    )
    print(
        f"    vs a loop over classes, batched over samples {t['class loop'] * 1e3:.0f} ms: "
        f"{t['class loop'] / t['vectorised']:.1f}x faster"
    )


if __name__ == "__main__":
    main()
