"""Per-element Bernoulli(alpha) masks, kept 1 bit per element.

Two generators, one rule (a draw below alpha's threshold is a 1; a draw equal to it is settled by
finer bits): the fused CPU kernel (kernels/) draws 16 Philox bits per element against
`philox_thresholds(alpha)`; the ATen form below, for every other case, draws 8 bits per element.

The ATen form: 8 random bits per element.

Why not `torch.rand(shape) < alpha`: on CPU one float draw per element costs about 8x a GELU pass,
a bool mask costs a byte per element for backward, and selecting with it (`torch.where`) is branchy
on a random mask (about 15x a GELU pass here). This module draws 64-bit words (8 bytes per word,
one mt19937 draw per 32 bits, the global generator: a checkpoint's RNG state still resumes bit for
bit), compares each byte with alpha's top 8 bits, and settles the rare ties (1 in 256) with a
float64 draw, so P(mask = 1) = alpha to within 2^-61 -- finer than `rand() < alpha` (2^-24).

Masks are uint8 0/1 (what a float blend reads after one vectorised copy) and are packed 8 to a byte
for backward (1/32 of a float32 input).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_INT64_MIN = -(1 << 63)

# Byte-parallel (SWAR) constants for packing 8 bytes of 0/1 into one byte and back, in int64 lanes.
_GATHER = 0x0102040810204080            # moves byte i's low bit to bit 56 + i
_SPREAD = 0x0101010101010101            # copies a byte into all 8 bytes of a word
_PICK = 0x8040201008040201 - (1 << 64)  # keeps bit i in byte i (as a signed int64)
_CARRY = 0x7F7F7F7F7F7F7F7F             # adding 0x7F to a byte sets its top bit iff the byte != 0
_LOW_BITS = 0x0101010101010101


def split_threshold(alpha: float) -> tuple[int, float]:
    """alpha * 256 as (whole, fraction): a byte below `whole` draws 1, a byte equal to it draws 1
    with probability `fraction`. alpha is a float32, so alpha * 256 and its fraction are exact."""
    scaled = float(alpha) * 256.0
    whole = math.floor(scaled)
    return whole, scaled - whole


def philox_thresholds(alpha: float) -> tuple[int, int]:
    """(threshold, tie threshold) of the kernel: a 16-bit draw below `threshold` = floor(alpha * 2^16)
    is a 1; one equal to it (probability 2^-16) is a 1 when a further 64-bit draw is below the
    fraction * 2^64 (as the signed int64 the op takes). alpha * 2^16 and its fraction * 2^64 are
    exact in float64, so P(1) = alpha to within 2^-80."""
    scaled = float(alpha) * 2.0 ** 16
    whole = math.floor(scaled)
    tie = math.floor((scaled - whole) * 2.0 ** 64)
    return whole, tie - (1 << 64) if tie >= 1 << 63 else tie


def draw_key(device=None) -> int:
    """64 bits from the global generator: the kernel's Philox key for one call (a restored RNG state
    replays it, and every call, layer and step gets its own stream)."""
    return int(torch.empty((), dtype=torch.int64, device=device).random_(_INT64_MIN, None))


def packed_size(n: int) -> int:
    """Bytes of the kernel's mask: 8 per 64 elements."""
    return (n + 63) // 64 * 8


def padded(n: int) -> int:
    """Mask length rounded up to whole 64-bit words (8 elements)."""
    return (n + 7) // 8 * 8


def draw_mask(n: int, alpha: float, device=None) -> Tensor:
    """A uint8 tensor of padded(n) independent Bernoulli(alpha) draws (the first n are used).

    Draws from the global generator, so `torch.manual_seed` and a saved RNG state reproduce it."""
    words = torch.empty(padded(n) // 8, dtype=torch.int64, device=device).random_(_INT64_MIN, None)
    byte = words.view(torch.uint8)
    mask = torch.empty_like(byte)
    whole, fraction = split_threshold(alpha)
    if whole >= 256:  # alpha == 1
        return mask.fill_(1)
    torch.lt(byte, whole, out=mask)  # uint8 out: a bool result is ~10x slower to produce on CPU
    if fraction > 0.0:
        _settle_ties(mask, byte, whole, fraction)
    return mask


def _settle_ties(mask: Tensor, byte: Tensor, whole: int, fraction: float) -> None:
    """mask[i] <- (u_i < fraction) where byte[i] == whole, u_i uniform float64, in index order.

    Ties are found word by word (a nonzero over n/8 words, not n bytes), then element by element in
    the few words that hold one."""
    tie = torch.eq(byte, whole, out=torch.empty_like(byte))
    tied_words = tie.view(torch.int64).nonzero().squeeze(1)
    if tied_words.numel() == 0:
        return
    row, col = tie.view(-1, 8).index_select(0, tied_words).nonzero(as_tuple=True)
    index = tied_words[row] * 8 + col
    draws = torch.rand(index.numel(), dtype=torch.float64, device=byte.device)
    mask[index] = (draws < fraction).to(torch.uint8)


def pack(mask: Tensor) -> Tensor:
    """uint8 0/1 mask of a multiple-of-8 length -> one bit per element (uint8, length / 8)."""
    words = mask.view(torch.int64)
    return ((words * _GATHER) >> 56).to(torch.uint8)


def unpack(packed: Tensor) -> Tensor:
    """The inverse of pack: uint8 0/1 per element, length 8 * len(packed)."""
    words = packed.to(torch.int64)
    words *= _SPREAD
    words &= _PICK
    words += _CARRY
    words >>= 7
    words &= _LOW_BITS
    return words.view(torch.uint8)
