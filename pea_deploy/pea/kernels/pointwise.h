// The activations the fused kernel computes itself, and the deploy targets, on ATen's vector type
// (at::vec::Vectorized: AVX-512, AVX2 or scalar, whichever this file is compiled for) so Act costs
// what ATen's own kernel costs. The formulas are ATen's CPU kernels' (Activation.cpp, GeluKernel):
// GELU 0.5 x (1 + erf(x / sqrt 2)), SiLU x / (1 + exp(-x)), Mish x tanh(log1p(exp x)), ELU
// (alpha 1) expm1 below 0; each derivative as ATen's *_backward computes it.
#pragma once

#include <ATen/cpu/vec/vec.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

namespace pea {

using at::vec::Vectorized;

enum Act : int64_t { kGiven = 0, kGelu = 1, kSilu = 2, kMish = 3, kElu = 4 };  // kGiven: the caller wrote Act
enum Target : int64_t { kReLU = 0, kReLU6 = 1 };

// exp(x) for the activations' own formulas: at::vec's exp_u20 (20 ulp) in float32, where it runs
// a GELU in 70 % of the time of the 1-ulp Sleef exp at no cost in the GELU's accuracy below.
template <typename T>
inline Vectorized<T> exp_fast(Vectorized<T> x) {
  if constexpr (std::is_same_v<T, float>) {
    return x.exp_u20();
  } else {
    return x.exp();
  }
}

// erf for the GELU: Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), at::vec's float erf with
// exp_fast. Max |GELU - exact| on [-6, 6]: 4.7e-7 here, 1.2e-6 for F.gelu (measured against float64).
template <typename T>
inline Vectorized<T> erf_fast(Vectorized<T> x) {
  if constexpr (!std::is_same_v<T, float>) {
    return x.erf();
  } else {
    const Vectorized<float> one(1.f), p(0.3275911f), a1(0.254829592f), a2(-0.284496736f), a3(1.421413741f),
        a4(-1.453152027f), a5(1.061405429f);
    const Vectorized<float> t = one / at::vec::fmadd(p, x.abs(), one);
    const Vectorized<float> r = at::vec::fmadd(at::vec::fmadd(at::vec::fmadd(at::vec::fmadd(a5, t, a4), t, a3), t, a2), t, a1);
    const Vectorized<float> e = exp_fast((x * x).neg());
    const Vectorized<float> magnitude = at::vec::fnmadd(r * t, e, one);  // 1 - r t exp(-x^2) >= 0
    return magnitude | (x & Vectorized<float>(-0.f));                   // erf is odd: x's sign bit
  }
}

template <typename T, int64_t A>
inline Vectorized<T> act_value(Vectorized<T> x) {
  const Vectorized<T> one(T(1));
  if constexpr (A == kGelu) {
    return x * Vectorized<T>(T(0.5)) * (one + erf_fast(x * Vectorized<T>(T(M_SQRT1_2))));
  } else if constexpr (A == kSilu) {
    return x / (one + x.neg().exp());
  } else if constexpr (A == kMish) {
    return x * x.exp().log1p().tanh();
  } else {
    static_assert(A == kElu);
    return Vectorized<T>::blendv(x.expm1(), x, x > Vectorized<T>(T(0)));
  }
}

// grad * Act'(x)
template <typename T, int64_t A>
inline Vectorized<T> act_grad(Vectorized<T> g, Vectorized<T> x) {
  const Vectorized<T> one(T(1));
  if constexpr (A == kGelu) {
    const Vectorized<T> cdf = Vectorized<T>(T(0.5)) * (one + erf_fast(x * Vectorized<T>(T(M_SQRT1_2))));
    const Vectorized<T> pdf = Vectorized<T>(T(M_2_SQRTPI * M_SQRT1_2 * 0.5)) * exp_fast(x * x * Vectorized<T>(T(-0.5)));
    return g * (cdf + x * pdf);
  } else if constexpr (A == kSilu) {
    const Vectorized<T> s = one / (one + x.neg().exp());
    return g * s * (one + x * (one - s));
  } else if constexpr (A == kMish) {
    const Vectorized<T> s = one / (one + x.neg().exp());
    const Vectorized<T> t = x.exp().log1p().tanh();
    return g * (t + x * s * (one - t * t));
  } else {
    static_assert(A == kElu);
    return Vectorized<T>::blendv(g * x.exp(), g, x > Vectorized<T>(T(0)));
  }
}

// Act over n (<= 64) elements into out, a vector at a time.
template <typename T, int64_t A>
inline void act_values(T* out, const T* x, int n) {
  constexpr int kLanes = Vectorized<T>::size();
  for (int e = 0; e < n; e += kLanes) {
    const int m = n - e < kLanes ? n - e : kLanes;
    act_value<T, A>(Vectorized<T>::loadu(x + e, m)).store(out + e, m);
  }
}

template <typename T, int64_t A>
inline void act_grads(T* out, const T* g, const T* x, int n) {
  constexpr int kLanes = Vectorized<T>::size();
  for (int e = 0; e < n; e += kLanes) {
    const int m = n - e < kLanes ? n - e : kLanes;
    act_grad<T, A>(Vectorized<T>::loadu(g + e, m), Vectorized<T>::loadu(x + e, m)).store(out + e, m);
  }
}

// The targets and their derivatives as branch-free selects (the compiler vectorises the loops that
// use them): torch.relu (NaN stays NaN), F.relu6, and torch's threshold_backward (x > 0) and
// hardtanh_backward (0 < x < 6).
template <typename T, int64_t Tgt>
inline T target_value(T x) {
  const T r = x < T(0) ? T(0) : x;
  if constexpr (Tgt == kReLU6) return r > T(6) ? T(6) : r;
  return r;
}

template <typename T, int64_t Tgt>
inline T target_grad(T g, T x) {
  if constexpr (Tgt == kReLU6) return (x > T(0)) & (x < T(6)) ? g : T(0);
  return x > T(0) ? g : T(0);
}

}  // namespace pea
