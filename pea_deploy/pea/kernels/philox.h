// Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC'11;
// Random123's philox4x32 with 10 rounds), the counter-based generator of the stochastic ensemble.
// A draw is a pure function of (key, counter): any thread computes any element's draw, so masks do
// not depend on the thread count, and the three code paths below (AVX-512, AVX2, scalar) give the
// same bits (tests/test_cpu_kernels.py checks the scalar block against Random123's kat_vectors and
// the vector paths against it).
#pragma once

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <cstdint>
#include <cstring>

namespace pea {

constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;  // Philox4x32 multipliers
constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;  // Weyl key increments
constexpr int kWord = 64;                                 // 32-bit draws per call of draw_word
constexpr uint32_t kTieDomain = 1u;                        // counter word 2 of tie draws

// One Philox4x32-10 block: ctr -> 4 uniform 32-bit words (Random123's philox4x32, 10 rounds).
inline void philox(uint32_t c[4], uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r, k0 += kW0, k1 += kW1) {
    const uint64_t p0 = static_cast<uint64_t>(kM0) * c[0];
    const uint64_t p1 = static_cast<uint64_t>(kM1) * c[2];
    const uint32_t c1 = c[1], c3 = c[3];
    c[0] = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    c[1] = static_cast<uint32_t>(p1);
    c[2] = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c[3] = static_cast<uint32_t>(p0);
  }
}

// 64 uniform 32-bit draws for elements 64 * word .. 64 * word + 63: 16 Philox blocks j with counters
// (16 * word + j, 0, 0, 0); element 16 * i + j takes output i of block j (so each output lane is
// stored as 16 consecutive draws, no transpose). The rounds run on 16 lanes at once: Philox's
// 32x32 -> 64-bit products are the even/odd-lane unsigned multiplies of AVX-512 or AVX2.
#if defined(__AVX512F__)
inline void mulhilo(__m512i a, __m512i m, __m512i& hi, __m512i& lo) {
  const __m512i even = _mm512_mul_epu32(a, m);
  const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
  lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
  hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
}

inline void draw_word(uint32_t out[kWord], uint64_t word, uint32_t key0, uint32_t key1) {
  const uint64_t first = word * 16;
  __m512i c0 = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(first))),
                                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
  // first is a multiple of 16, so first + j never carries into the high word
  __m512i c1 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(first >> 32)));
  __m512i c2 = _mm512_setzero_si512(), c3 = _mm512_setzero_si512();
  const __m512i m0 = _mm512_set1_epi32(static_cast<int>(kM0)), m1 = _mm512_set1_epi32(static_cast<int>(kM1));
  uint32_t k0 = key0, k1 = key1;
  for (int r = 0; r < 10; ++r, k0 += kW0, k1 += kW1) {
    __m512i hi0, lo0, hi1, lo1;
    mulhilo(c0, m0, hi0, lo0);
    mulhilo(c2, m1, hi1, lo1);
    c0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), _mm512_set1_epi32(static_cast<int>(k0)));
    c1 = lo1;
    c2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), _mm512_set1_epi32(static_cast<int>(k1)));
    c3 = lo0;
  }
  _mm512_storeu_si512(out, c0);
  _mm512_storeu_si512(out + 16, c1);
  _mm512_storeu_si512(out + 32, c2);
  _mm512_storeu_si512(out + 48, c3);
}
#elif defined(__AVX2__)
inline void mulhilo(__m256i a, __m256i m, __m256i& hi, __m256i& lo) {
  const __m256i even = _mm256_mul_epu32(a, m);
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
  lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

inline void draw_word(uint32_t out[kWord], uint64_t word, uint32_t key0, uint32_t key1) {
  const uint64_t first = word * 16;
  const __m256i m0 = _mm256_set1_epi32(static_cast<int>(kM0)), m1 = _mm256_set1_epi32(static_cast<int>(kM1));
  for (int half = 0; half < 2; ++half) {
    __m256i c0 = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(first) + 8 * half)),
                                  _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256i c1 = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(first >> 32)));
    __m256i c2 = _mm256_setzero_si256(), c3 = _mm256_setzero_si256();
    uint32_t k0 = key0, k1 = key1;
    for (int r = 0; r < 10; ++r, k0 += kW0, k1 += kW1) {
      __m256i hi0, lo0, hi1, lo1;
      mulhilo(c0, m0, hi0, lo0);
      mulhilo(c2, m1, hi1, lo1);
      c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32(static_cast<int>(k0)));
      c1 = lo1;
      c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32(static_cast<int>(k1)));
      c3 = lo0;
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 8 * half), c0);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 16 + 8 * half), c1);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 32 + 8 * half), c2);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 48 + 8 * half), c3);
  }
}
#else
inline void draw_word(uint32_t out[kWord], uint64_t word, uint32_t key0, uint32_t key1) {
  for (int j = 0; j < 16; ++j) {
    const uint64_t ctr = word * 16 + j;
    uint32_t c[4] = {static_cast<uint32_t>(ctr), static_cast<uint32_t>(ctr >> 32), 0, 0};
    philox(c, key0, key1);
    for (int i = 0; i < 4; ++i) out[16 * i + j] = c[i];
  }
}
#endif

// 8 bytes of 0/1 <-> one byte of bits (bit i = byte i), in 64-bit lanes (SWAR).
inline uint8_t pack8(const uint8_t take[8]) {
  uint64_t v;
  std::memcpy(&v, take, 8);
  return static_cast<uint8_t>((v * 0x0102040810204080ull) >> 56);
}

inline void unpack8(uint8_t bits, uint8_t take[8]) {
  uint64_t v = (bits * 0x0101010101010101ull) & 0x8040201008040201ull;
  v = ((v + 0x7F7F7F7F7F7F7F7Full) >> 7) & 0x0101010101010101ull;
  std::memcpy(take, &v, 8);
}

// A 16-bit draw equal to the threshold (probability 2^-16) is settled by a 64-bit draw of its own
// (counter (index, 1)) against the threshold's fraction scaled by 2^64: P(1) = alpha to 2^-80.
inline bool settle_tie(uint64_t index, uint32_t key0, uint32_t key1, uint64_t tie_threshold) {
  uint32_t c[4] = {static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32), kTieDomain, 0};
  philox(c, key0, key1);
  return ((static_cast<uint64_t>(c[1]) << 32) | c[0]) < tie_threshold;
}

}  // namespace pea
