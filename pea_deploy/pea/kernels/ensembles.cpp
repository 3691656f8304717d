// The fused CPU passes of the PEA ensembles, built on the user's machine by cpu_kernels.py.
//
// Why: written in ATen ops, an ensemble needs after Act(x) the target's pass and a blend pass and,
// for the stochastic ensemble, a serial mt19937 draw, a compare and a bit-pack: five to eight passes
// over every activation where an Act-only net has one, each reading memory the last one evicted
// from cache (a MobileNet-0.25 step at batch 64 moves 200 MiB per activation set). Here one pass per
// direction reads x (and the incoming gradient) once and, 64 elements at a time, computes Act
// (GELU, SiLU, Mish, ELU: pointwise.h; any other activation arrives computed in y), the target,
// the Philox draw (philox.h) and the pick or blend.
//
// Tensors are 1-D dense views in x's memory order (the caller flattens contiguous or channels_last
// tensors); the mask is one bit per element: byte k holds elements 8k..8k+7, bit i element 8k+i.

// at::vec picks its instruction set from these; -march=native (cpu_kernels.py) says what this CPU has.
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__)
#define CPU_CAPABILITY AVX512
#define CPU_CAPABILITY_AVX512
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define CPU_CAPABILITY AVX2
#define CPU_CAPABILITY_AVX2
#else
#define CPU_CAPABILITY DEFAULT
#endif

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "philox.h"
#include "pointwise.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the mask's 16-bit draws are read little-endian");

namespace pea {
namespace {

constexpr int64_t kGrain = 256;  // mask words (16k elements) per thread at least

// out[e] <- take[e] ? T(x[e]) : from[e]. Every input is read unconditionally: a load behind the
// select would be a masked load, which the vectoriser refuses.
template <typename T, int64_t Tgt>
inline void pick_values(T* __restrict__ out, const T* __restrict__ from, const T* __restrict__ x,
                        const uint8_t* __restrict__ take, int count) {
  for (int e = 0; e < count; ++e) {
    const T t = target_value<T, Tgt>(x[e]);
    out[e] = take[e] ? t : from[e];
  }
}

template <typename T, int64_t Tgt>
inline void pick_grads(T* __restrict__ out, const T* __restrict__ from, const T* __restrict__ g,
                       const T* __restrict__ x, const uint8_t* __restrict__ take, int count) {
  for (int e = 0; e < count; ++e) {
    const T t = target_grad<T, Tgt>(g[e], x[e]);
    out[e] = take[e] ? t : from[e];
  }
}

template <typename T, int64_t Tgt>
inline void blend_values(T* __restrict__ out, const T* __restrict__ from, const T* __restrict__ x, T w, int count) {
  for (int e = 0; e < count; ++e) out[e] = from[e] + w * (target_value<T, Tgt>(x[e]) - from[e]);
}

template <typename T, int64_t Tgt>
inline void blend_grads(T* __restrict__ out, const T* __restrict__ from, const T* __restrict__ g,
                        const T* __restrict__ x, T w, int count) {
  for (int e = 0; e < count; ++e) out[e] = from[e] + w * (target_grad<T, Tgt>(g[e], x[e]) - from[e]);
}

// Act's values (or derivative) for one word's elements: computed into `buffer`, or, for kGiven,
// copied from out (what the caller wrote there), so the selects above never alias their output.
template <typename T, int64_t A>
inline const T* act_word(T* buffer, const T* out, const T* x, int count) {
  if constexpr (A == kGiven) {
    std::memcpy(buffer, out, sizeof(T) * count);
  } else {
    act_values<T, A>(buffer, x, count);
  }
  return buffer;
}

template <typename T, int64_t A>
inline const T* act_grad_word(T* buffer, const T* out, const T* g, const T* x, int count) {
  if constexpr (A == kGiven) {
    std::memcpy(buffer, out, sizeof(T) * count);
  } else {
    act_grads<T, A>(buffer, g, x, count);
  }
  return buffer;
}

// fn(first word, end word) over the 64-element words of n elements, across threads.
template <typename Fn>
void over_words(int64_t n, const Fn& fn) {
  at::parallel_for(0, (n + kWord - 1) / kWord, kGrain, fn);
}

inline int word_count(int64_t n, int64_t w) { return static_cast<int>(std::min<int64_t>(kWord, n - w * kWord)); }

// Element i draws the 16-bit half i % 2 (low half first) of 32-bit draw i / 2 % 64 of draw group
// i / 128 (philox.h: draw_word), so one Philox block serves 8 elements; a draw below `threshold` is 1.
template <typename T, int64_t A, int64_t Tgt>
void stochastic_forward(T* y, const T* x, uint8_t* mask, int64_t n, uint64_t key, uint16_t threshold,
                        uint64_t tie_threshold) {
  const uint32_t key0 = static_cast<uint32_t>(key), key1 = static_cast<uint32_t>(key >> 32);
  over_words(n, [&](int64_t first, int64_t stop) {
    uint32_t draw[kWord];
    int64_t drawn = -1;  // the draw group in `draw`
    uint8_t take[kWord];
    alignas(64) T act[kWord];
    for (int64_t w = first; w < stop; ++w) {
      if (w / 2 != drawn) {
        drawn = w / 2;
        draw_word(draw, static_cast<uint64_t>(drawn), key0, key1);
      }
      uint16_t half[kWord];
      std::memcpy(half, draw + 32 * (w % 2), sizeof(half));  // little-endian: low half first
      uint8_t ties = 0;
      for (int e = 0; e < kWord; ++e) {
        take[e] = half[e] < threshold;
        ties |= half[e] == threshold;
      }
      const int64_t base = w * kWord;
      const int count = word_count(n, w);
      if (ties && tie_threshold != 0) {
        for (int e = 0; e < count; ++e)
          if (half[e] == threshold) take[e] = settle_tie(base + e, key0, key1, tie_threshold);
      }
      for (int e = count; e < kWord; ++e) take[e] = 0;  // past the end: the mask's padding is 0
      for (int b = 0; b < 8; ++b) mask[8 * w + b] = pack8(take + 8 * b);
      const T* from = act_word<T, A>(act, y + base, x + base, count);
      if (count == kWord) {
        pick_values<T, Tgt>(y + base, from, x + base, take, kWord);  // a constant trip count: vectorised whole
      } else {
        pick_values<T, Tgt>(y + base, from, x + base, take, count);
      }
    }
  });
}

template <typename T, int64_t A, int64_t Tgt>
void stochastic_backward(T* grad, const T* grad_out, const T* x, const uint8_t* mask, int64_t n) {
  over_words(n, [&](int64_t first, int64_t stop) {
    uint8_t take[kWord];
    alignas(64) T act[kWord];
    for (int64_t w = first; w < stop; ++w) {
      for (int b = 0; b < 8; ++b) unpack8(mask[8 * w + b], take + 8 * b);
      const int64_t base = w * kWord;
      const int count = word_count(n, w);
      const T* from = act_grad_word<T, A>(act, grad + base, grad_out + base, x + base, count);
      if (count == kWord) {
        pick_grads<T, Tgt>(grad + base, from, grad_out + base, x + base, take, kWord);
      } else {
        pick_grads<T, Tgt>(grad + base, from, grad_out + base, x + base, take, count);
      }
    }
  });
}

template <typename T, int64_t A, int64_t Tgt>
void weighted_forward(T* y, const T* x, T weight, int64_t n) {
  over_words(n, [&](int64_t first, int64_t stop) {
    alignas(64) T act[kWord];
    for (int64_t w = first; w < stop; ++w) {
      const int64_t base = w * kWord;
      const int count = word_count(n, w);
      const T* from = act_word<T, A>(act, y + base, x + base, count);
      blend_values<T, Tgt>(y + base, from, x + base, weight, count);
    }
  });
}

template <typename T, int64_t A, int64_t Tgt>
void weighted_backward(T* grad, const T* grad_out, const T* x, T weight, int64_t n) {
  over_words(n, [&](int64_t first, int64_t stop) {
    alignas(64) T act[kWord];
    for (int64_t w = first; w < stop; ++w) {
      const int64_t base = w * kWord;
      const int count = word_count(n, w);
      const T* from = act_grad_word<T, A>(act, grad + base, grad_out + base, x + base, count);
      blend_grads<T, Tgt>(grad + base, from, grad_out + base, x + base, weight, count);
    }
  });
}

void check_flat(const at::Tensor& t, const at::Tensor& x, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.dim() == 1 && t.is_contiguous(), name, " must be a 1-D dense CPU tensor");
  TORCH_CHECK(t.scalar_type() == x.scalar_type() && t.numel() == x.numel(), name, " must match x");
}

void check_mask(const at::Tensor& mask, int64_t n) {
  TORCH_CHECK(mask.device().is_cpu() && mask.is_contiguous() && mask.scalar_type() == at::kByte &&
                  mask.numel() == (n + kWord - 1) / kWord * 8,
              "mask must be uint8 with 8 bytes per 64 elements");
}

// Calls CALL with `scalar` (float, double), `A` (the activation) and `Tgt` (the target) as constants.
#define PEA_WITH_TARGET(target, CALL)                                           \
  if ((target) == kReLU) { constexpr int64_t Tgt = kReLU; CALL; }              \
  else { constexpr int64_t Tgt = kReLU6; CALL; }
#define PEA_WITH_ACT(act, target, CALL)                                                   \
  switch (act) {                                                                          \
    case kGiven: { constexpr int64_t A = kGiven; PEA_WITH_TARGET(target, CALL) break; }  \
    case kGelu: { constexpr int64_t A = kGelu; PEA_WITH_TARGET(target, CALL) break; }    \
    case kSilu: { constexpr int64_t A = kSilu; PEA_WITH_TARGET(target, CALL) break; }    \
    case kMish: { constexpr int64_t A = kMish; PEA_WITH_TARGET(target, CALL) break; }    \
    default: { constexpr int64_t A = kElu; PEA_WITH_TARGET(target, CALL) break; }        \
  }
#define PEA_DISPATCH(x, act, target, NAME, CALL)                                            \
  do {                                                                                      \
    TORCH_CHECK((target) == kReLU || (target) == kReLU6, NAME ": unknown target");          \
    TORCH_CHECK((act) >= kGiven && (act) <= kElu, NAME ": unknown activation");             \
    TORCH_CHECK((x).scalar_type() == at::kFloat || (x).scalar_type() == at::kDouble,        \
                NAME ": float32 or float64 only");                                          \
    if ((x).scalar_type() == at::kFloat) {                                                  \
      using scalar = float;                                                                 \
      PEA_WITH_ACT(act, target, CALL)                                                       \
    } else {                                                                                \
      using scalar = double;                                                                \
      PEA_WITH_ACT(act, target, CALL)                                                       \
    }                                                                                       \
  } while (0)

// y <- Act(x) (act kGiven: y holds it already), then y[i] <- T(x[i]) where the i-th draw is 1.
void stochastic_pick_(at::Tensor y, const at::Tensor& x, at::Tensor mask, int64_t act, int64_t key,
                      int64_t threshold, int64_t tie_threshold, int64_t target) {
  check_flat(y, x, "y");
  check_flat(x, x, "x");
  check_mask(mask, x.numel());
  TORCH_CHECK(threshold >= 0 && threshold <= 0xFFFF, "threshold out of range");
  PEA_DISPATCH(x, act, target, "stochastic_pick_",
               (stochastic_forward<scalar, A, Tgt>(y.data_ptr<scalar>(), x.data_ptr<scalar>(),
                                                   mask.data_ptr<uint8_t>(), x.numel(), static_cast<uint64_t>(key),
                                                   static_cast<uint16_t>(threshold),
                                                   static_cast<uint64_t>(tie_threshold))));
}

// grad <- grad_out * Act'(x) (kGiven: grad holds it), then grad[i] <- grad_out * T'(x) where bit i is 1.
void stochastic_pick_backward_(at::Tensor grad, const at::Tensor& grad_out, const at::Tensor& x,
                               const at::Tensor& mask, int64_t act, int64_t target) {
  check_flat(grad, x, "grad");
  check_flat(grad_out, x, "grad_out");
  check_flat(x, x, "x");
  check_mask(mask, x.numel());
  PEA_DISPATCH(x, act, target, "stochastic_pick_backward_",
               (stochastic_backward<scalar, A, Tgt>(grad.data_ptr<scalar>(), grad_out.data_ptr<scalar>(),
                                                    x.data_ptr<scalar>(), mask.data_ptr<uint8_t>(), x.numel())));
}

// y <- Act(x) (kGiven: y holds it), then y <- y + w (T(x) - y).
void weighted_blend_(at::Tensor y, const at::Tensor& x, int64_t act, double w, int64_t target) {
  check_flat(y, x, "y");
  check_flat(x, x, "x");
  PEA_DISPATCH(x, act, target, "weighted_blend_",
               (weighted_forward<scalar, A, Tgt>(y.data_ptr<scalar>(), x.data_ptr<scalar>(), static_cast<scalar>(w),
                                                 x.numel())));
}

// grad <- grad_out * Act'(x) (kGiven: grad holds it), then grad <- grad + w (grad_out * T'(x) - grad).
void weighted_blend_backward_(at::Tensor grad, const at::Tensor& grad_out, const at::Tensor& x, int64_t act,
                              double w, int64_t target) {
  check_flat(grad, x, "grad");
  check_flat(grad_out, x, "grad_out");
  check_flat(x, x, "x");
  PEA_DISPATCH(x, act, target, "weighted_blend_backward_",
               (weighted_backward<scalar, A, Tgt>(grad.data_ptr<scalar>(), grad_out.data_ptr<scalar>(),
                                                  x.data_ptr<scalar>(), static_cast<scalar>(w), x.numel())));
}

// One Philox block, for the known-answer test against Random123's kat_vectors.
std::vector<int64_t> philox4x32_10(std::vector<int64_t> ctr, std::vector<int64_t> key) {
  TORCH_CHECK(ctr.size() == 4 && key.size() == 2, "philox4x32_10 takes 4 counter and 2 key words");
  uint32_t c[4];
  for (int i = 0; i < 4; ++i) c[i] = static_cast<uint32_t>(ctr[i]);
  philox(c, static_cast<uint32_t>(key[0]), static_cast<uint32_t>(key[1]));
  return {c[0], c[1], c[2], c[3]};
}

// The instruction set at::vec was compiled for here ("AVX512", "AVX2", "DEFAULT").
std::string capability() {
#define PEA_STR2(x) #x
#define PEA_STR(x) PEA_STR2(x)
  return PEA_STR(CPU_CAPABILITY);
}

}  // namespace
}  // namespace pea

TORCH_LIBRARY(pea_deploy, m) {
  m.def("stochastic_pick_(Tensor(a!) y, Tensor x, Tensor(b!) mask, int act, int key, int threshold, "
        "int tie_threshold, int target) -> ()", pea::stochastic_pick_);
  m.def("stochastic_pick_backward_(Tensor(a!) grad, Tensor grad_out, Tensor x, Tensor mask, int act, "
        "int target) -> ()", pea::stochastic_pick_backward_);
  m.def("weighted_blend_(Tensor(a!) y, Tensor x, int act, float w, int target) -> ()", pea::weighted_blend_);
  m.def("weighted_blend_backward_(Tensor(a!) grad, Tensor grad_out, Tensor x, int act, float w, int target) -> ()",
        pea::weighted_blend_backward_);
  m.def("philox4x32_10(int[] ctr, int[] key) -> int[]", pea::philox4x32_10);
  m.def("capability() -> str", pea::capability);
}
