"""Slow, obvious loop implementations of the paper's equations, for checking the fast ones."""

import torch
import torch.nn.functional as F


def slow_discriminality(features, groups, keep=None, pool="max"):
    b = features.shape[0]
    out = torch.zeros(b, groups.num_classes, dtype=features.dtype)
    for n in range(b):
        for i in range(groups.num_classes):
            chans = groups.channels(i)
            if keep is not None:
                k = keep if keep.dim() == 1 else keep[n]
                chans = [ch for ch in chans if bool(k[ch])]
            x = features[n, chans]  # (m, H, W)
            pooled = x.max(dim=0).values if pool == "max" else x.mean(dim=0)
            out[n, i] = pooled.mean()
    return out


def slow_diversity(features, groups, region="all", mask=None):
    b = features.shape[0]
    out = torch.zeros(b, groups.num_classes, dtype=torch.float64)
    for n in range(b):
        for i in range(groups.num_classes):
            maps = [features[n, ch].flatten().double() for ch in groups.channels(i)]
            if mask is not None:
                maps = [m[mask[n].flatten()] for m in maps]
            elif region != "all":  # positions where a mean map reaches its spatial mean
                mean_map = (torch.stack(maps) if region == "class" else features[n].flatten(1).double()).mean(dim=0)
                inside = mean_map >= mean_map.mean()
                maps = [m[inside] for m in maps]
            probs = [F.softmax(m, dim=0) for m in maps]
            out[n, i] = torch.stack(probs).max(dim=0).values.sum()
    return out


def slow_mc_loss(features, groups, target, lam, keep=None):
    dis = F.cross_entropy(slow_discriminality(features, groups, keep), target)
    div = slow_diversity(features, groups).mean()
    return dis - lam * div
