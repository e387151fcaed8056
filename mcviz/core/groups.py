"""Which feature channels belong to which class (paper Eq. 1 and Table II)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import torch


@dataclass(frozen=True)
class ChannelGroups:
    """An assignment of feature channels to classes.

    ``members[i]`` lists the channel indices owned by class ``i``. The usual groups are
    contiguous and disjoint (:meth:`uniform`, :meth:`from_sizes`, :meth:`split`); the
    soft-label variant builds groups that may be uneven and share channels
    (:meth:`from_members`). Every loss term works on both through :attr:`padded_index`.

    Args:
        members: per class, the indices of the channels it owns (at least one each).
        num_channels: the feature map's channel count N.

    Raises:
        ValueError: no class, a class without channels, a channel outside ``0..N-1`` or listed twice.
    """

    members: tuple[tuple[int, ...], ...]
    num_channels: int

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("ChannelGroups needs at least one class")
        for i, m in enumerate(self.members):
            if len(m) < 1:
                raise ValueError(f"class {i} owns no channel: every group needs at least 1 channel")
            bad = [ch for ch in m if not 0 <= ch < self.num_channels]
            if bad:
                raise ValueError(f"class {i} names channel(s) {bad[:5]} outside 0..{self.num_channels - 1}")
            if len(set(m)) != len(m):
                raise ValueError(f"class {i} lists a channel twice")

    # -- constructors -------------------------------------------------------------------
    @classmethod
    def uniform(cls, num_classes: int, xi: int) -> "ChannelGroups":
        """Class ``i`` owns channels ``[i*xi, (i+1)*xi)`` (paper Eq. 1).

        Args:
            num_classes: the number of classes c.
            xi: channels per class ξ.

        Returns:
            c contiguous groups of ξ channels (N = c ξ).

        Raises:
            ValueError: ``num_classes`` or ``xi`` below 1.
        """
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if xi < 1:
            raise ValueError(f"xi (channels per class) must be >= 1, got {xi}")
        return cls.from_sizes([xi] * num_classes)

    @classmethod
    def from_sizes(cls, sizes: Sequence[int]) -> "ChannelGroups":
        """Contiguous groups of the given sizes, in class order.

        Args:
            sizes: each class's channel count, in class order.

        Returns:
            The groups, tiling ``0..sum(sizes)-1``.

        Raises:
            ValueError: no sizes, or a size below 1.
        """
        sizes = [int(s) for s in sizes]
        if not sizes:
            raise ValueError("sizes is empty: ChannelGroups needs at least one class")
        small = [(i, s) for i, s in enumerate(sizes) if s < 1]
        if small:
            i, s = small[0]
            raise ValueError(f"group size must be >= 1, but class {i} has {s}")
        members, start = [], 0
        for s in sizes:
            members.append(tuple(range(start, start + s)))
            start += s
        return cls(tuple(members), start)

    @classmethod
    def split(cls, num_channels: int, num_classes: int) -> "ChannelGroups":
        """The paper's uneven split (Table II).

        Every class gets ``num_channels // num_classes`` channels and the last
        ``num_channels % num_classes`` classes get one more.

        Args:
            num_channels: the feature map's channel count N (e.g. 1280 for EfficientNet's head conv).
            num_classes: the number of classes c.

        Returns:
            Contiguous groups of ``N // c`` or ``N // c + 1`` channels.

        Raises:
            ValueError: fewer channels than classes, or ``num_classes`` below 1.
        """
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        base, extra = divmod(num_channels, num_classes)
        if base < 1:
            raise ValueError(
                f"{num_channels} channels cannot be split over {num_classes} classes "
                "(every class needs at least one channel)"
            )
        return cls.from_sizes([base] * (num_classes - extra) + [base + 1] * extra)

    @classmethod
    def from_members(cls, members: Sequence[Sequence[int]], num_channels: int) -> "ChannelGroups":
        """Arbitrary (possibly uneven, possibly overlapping) groups.

        Args:
            members: per class, the channel indices it owns.
            num_channels: the feature map's channel count.

        Returns:
            The groups as given.
        """
        return cls(tuple(tuple(int(c) for c in m) for m in members), int(num_channels))

    # -- views ----------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.members)

    @cached_property
    def sizes(self) -> tuple[int, ...]:
        return tuple(len(m) for m in self.members)

    @property
    def max_size(self) -> int:
        return max(self.sizes)

    @cached_property
    def is_contiguous(self) -> bool:
        """True when the groups tile ``0..N-1`` in class order without overlap."""
        expected = 0
        for m in self.members:
            if m != tuple(range(expected, expected + len(m))):
                return False
            expected += len(m)
        return expected == self.num_channels

    @cached_property
    def runs(self) -> tuple[tuple[int, int, int], ...]:
        """Consecutive classes of equal group size as ``(first channel, classes, size)``."""
        out: list[list[int]] = []
        start = 0
        for s in self.sizes:
            if out and out[-1][2] == s:
                out[-1][1] += 1
            else:
                out.append([start, 1, s])
            start += s
        return tuple(tuple(r) for r in out)  # type: ignore[misc]

    @cached_property
    def is_uniform(self) -> bool:
        return self.is_contiguous and len(set(self.sizes)) == 1

    def channels(self, i: int) -> list[int]:
        """The channel indices owned by class ``i``.

        Args:
            i: a class index.

        Returns:
            The class's channels, in order.

        Raises:
            IndexError: ``i`` is not a class.
        """
        if not 0 <= i < self.num_classes:
            raise IndexError(f"class {i} out of range 0..{self.num_classes - 1}")
        return list(self.members[i])

    def owner(self) -> torch.Tensor:
        """Class index per channel.

        Returns:
            ``(N,)`` long tensor: each channel's class, -1 for unowned channels (shared: the first owner).
        """
        return self._owner.clone()  # a copy: the caller may change it

    @cached_property
    def _owner(self) -> torch.Tensor:
        # once per grouping: a loop over the classes, which a ranking per upload would repeat
        out = torch.full((self.num_channels,), -1, dtype=torch.long)
        for i in reversed(range(self.num_classes)):
            out[list(self.members[i])] = i
        return out

    @cached_property
    def padded_index(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(index, valid)``, both ``(c, max_size)``.

        ``index[i, j]`` is the j-th channel of class i; where class i has fewer than
        ``max_size`` channels the row is padded (with its own first channel) and
        ``valid`` is False. One gather with this index turns any grouping into a dense
        ``(B, c, max_size, ...)`` tensor, so no loss term loops over classes.
        """
        m = self.max_size
        index = torch.tensor([list(g) + [g[0]] * (m - len(g)) for g in self.members], dtype=torch.long)
        valid = torch.tensor([[True] * len(g) + [False] * (m - len(g)) for g in self.members])
        return index, valid

    def check(self, num_channels: int) -> None:
        """Check that a feature map fits these groups.

        Args:
            num_channels: the feature map's channel count.

        Raises:
            ValueError: it differs from :attr:`num_channels`.
        """
        if num_channels != self.num_channels:
            raise ValueError(
                f"the feature map has {num_channels} channels but the channel groups expect "
                f"{self.num_channels} ({self.num_classes} classes, sizes {_describe(self.sizes)})"
            )

    def to_dict(self) -> dict:
        """The JSON form stored in checkpoints.

        Returns:
            ``{"sizes": [...]}`` for contiguous groups, else ``{"members": [...], "num_channels": N}``.
        """
        if self.is_contiguous:
            return {"sizes": list(self.sizes)}
        return {"members": [list(m) for m in self.members], "num_channels": self.num_channels}

    @classmethod
    def from_dict(cls, d: dict) -> "ChannelGroups":
        """The inverse of :meth:`to_dict`.

        Args:
            d: ``{"sizes": [...]}`` or ``{"members": [...], "num_channels": N}``.

        Returns:
            The groups it describes.
        """
        if "sizes" in d:
            return cls.from_sizes(d["sizes"])
        return cls.from_members(d["members"], d["num_channels"])

    def __repr__(self) -> str:
        return f"ChannelGroups(classes={self.num_classes}, channels={self.num_channels}, sizes={_describe(self.sizes)})"


def _describe(sizes: Sequence[int]) -> str:
    """'3 x 200' or '10 x 152 + 11 x 48' style summary of group sizes."""
    counts: dict[int, int] = {}
    for s in sizes:
        counts[s] = counts.get(s, 0) + 1
    return " + ".join(f"{s} x {n}" for s, n in sorted(counts.items()))
