"""bfloat16 rounding (nearest, ties to even) on chosen bit patterns and against an independent oracle."""
import numpy as np
import pytest

from qkcapture import bf16_bits_to_float32, float32_to_bf16_bits
from qkcapture.dtypes import canonical_dtype


def bits_to_bf16(pattern):
    return int(float32_to_bf16_bits(np.array([pattern], dtype=np.uint32).view(np.float32))[0])


@pytest.mark.parametrize("pattern, expected", [
    (0x3F800000, 0x3F80),  # 1.0, exact
    (0x3F807FFF, 0x3F80),  # just below the halfway point: down
    (0x3F808000, 0x3F80),  # exactly halfway, kept bit even: down (to even)
    (0x3F808001, 0x3F81),  # just above halfway: up
    (0x3F818000, 0x3F82),  # exactly halfway, kept bit odd: up (to even)
    (0x3F7FFFFF, 0x3F80),  # 0.99999994 rounds up into the next binade: 1.0
    (0xBF808000, 0xBF80),  # negative tie, even: toward zero
    (0xBF818000, 0xBF82),  # negative tie, odd: away from zero
    (0x80000000, 0x8000),  # -0.0 keeps its sign
    (0x00000001, 0x0000),  # smallest subnormal rounds to +0
    (0x00018000, 0x0002),  # subnormal tie, odd: up
    (0x807FFFFF, 0x8080),  # largest negative subnormal rounds up to the smallest normal
    (0x7F7F7FFF, 0x7F7F),  # below the top: the largest finite bf16
    (0x7F7FFFFF, 0x7F80),  # largest float32 overflows to +inf as IEEE rounding does
    (0xFF7FFFFF, 0xFF80),  # ... and to -inf when negative
    (0x7F800000, 0x7F80),  # +inf stays +inf
    (0xFF800000, 0xFF80),  # -inf stays -inf
])
def test_bf16_rounding_of_chosen_patterns(pattern, expected):
    assert bits_to_bf16(pattern) == expected


@pytest.mark.parametrize("pattern", [0x7FC00000, 0x7F800001, 0x7FFFFFFF, 0xFFFFFFFF, 0xFF800001, 0x7F80FFFF])
def test_bf16_nan_stays_nan_with_its_sign(pattern):
    # A NaN whose payload sits only in the dropped low bits must not turn into an infinity.
    out = bits_to_bf16(pattern)
    assert (out & 0x7F80) == 0x7F80 and (out & 0x007F) != 0, hex(out)
    assert (out >> 15) == (pattern >> 31)
    assert np.isnan(bf16_bits_to_float32(np.array([out], dtype=np.uint16))[0])


def oracle_bf16(pattern):
    """Round one finite float32 bit pattern to bf16 by comparing distances in float64."""
    x = float(np.array([pattern], dtype=np.uint32).view(np.float32)[0])
    low = pattern >> 16
    high = low + 1

    def as_f64(b):
        if (b & 0x7FFF) == 0x7F80:  # the step past the largest finite value: IEEE rounds as if to 2^128
            return -(2.0**128) if b & 0x8000 else 2.0**128
        return float(np.array([b << 16], dtype=np.uint32).view(np.float32)[0])

    lo_v = as_f64(low)
    hi_v = as_f64(high)
    d_lo, d_hi = abs(x - lo_v), abs(hi_v - x)
    if d_lo < d_hi:
        return low
    if d_hi < d_lo:
        return high
    return low if low % 2 == 0 else high


def test_bf16_matches_independent_oracle_on_random_patterns():
    rng = np.random.default_rng(7)
    patterns = rng.integers(0, 2**32, size=20000, dtype=np.uint64).astype(np.uint32)
    # Force a share of exact ties and near-ties, which random patterns rarely hit.
    patterns[:4000] = (patterns[:4000] & np.uint32(0xFFFF0000)) | np.uint32(0x8000)
    patterns[4000:6000] = (patterns[4000:6000] & np.uint32(0xFFFF0000)) | np.uint32(0x7FFF)
    patterns[6000:6004] = [0x7F7F8000, 0x7F7F7FFF, 0xFF7F8000, 0x7F7FFFFF]  # at the top of the range
    finite = (patterns & np.uint32(0x7F800000)) != np.uint32(0x7F800000)
    patterns = patterns[finite]
    got = float32_to_bf16_bits(patterns.view(np.float32))
    expected = np.array([oracle_bf16(int(p)) for p in patterns], dtype=np.uint32)
    mismatches = np.nonzero(got.astype(np.uint32) != (expected & 0xFFFF))[0]
    assert mismatches.size == 0, [hex(int(patterns[i])) for i in mismatches[:5]]


def test_bf16_round_trip_is_exact_for_representable_values_and_close_otherwise():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(10000).astype(np.float32)
    representable = (x.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)
    np.testing.assert_array_equal(bf16_bits_to_float32(float32_to_bf16_bits(representable)), representable)
    back = bf16_bits_to_float32(float32_to_bf16_bits(x))
    # Round to nearest: the error is at most half a unit in the last place (2^-8 relative).
    assert np.all(np.abs(back - x) <= np.abs(x) * 2.0**-8)


def test_conversion_keeps_shape():
    x = np.zeros((2, 3, 4), dtype=np.float32)
    assert float32_to_bf16_bits(x).shape == (2, 3, 4)
    assert bf16_bits_to_float32(float32_to_bf16_bits(x)).shape == (2, 3, 4)


@pytest.mark.parametrize("name, canonical", [("bf16", "BF16"), ("BF16", "BF16"), ("float16", "F16"),
                                             ("f32", "F32"), ("float64", "F64")])
def test_dtype_names(name, canonical):
    assert canonical_dtype(name) == canonical


def test_unknown_dtype_name():
    with pytest.raises(ValueError, match="unknown dtype 'int8'"):
        canonical_dtype("int8")
