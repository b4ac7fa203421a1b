// CPU operators for training with --cpu_kernels compiled (utils/kernels.py builds this file on first use).
// Paddle 3.3's CPU kernels for LayerNorm's backward, dropout's masks, and a Linear's bias (its gradient a reduction)
// are generic element-wise and reduction code; these are one pass per row, written so the compiler vectorizes the
// inner loops; the attention heads' transposes are one copy each. float32 only, contiguous inputs, the normalised /
// biased axis last. Single-threaded: on two threads they were no faster (MKL's idle OpenMP threads hold the cores).
#include "paddle/extension.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {

int64_t Width(const paddle::Tensor& x) { return x.shape().back(); }

void CheckFloat(const paddle::Tensor& x, const char* what) {
  PD_CHECK(x.dtype() == paddle::DataType::FLOAT32, what, " must be float32");
  PD_CHECK(x.is_cpu(), what, " must be on the CPU");
}

// y = f(h + b) element by element, b added over the last axis (a Linear's bias after its matrix product)
template <typename F>
paddle::Tensor AddBiasThen(const paddle::Tensor& h, const paddle::Tensor& b, F f) {
  CheckFloat(h, "h");
  const int64_t d = Width(h), rows = h.numel() / d;
  auto y = paddle::empty_like(h);
  const float *ph = h.data<float>(), *pb = b.data<float>();
  float* py = y.data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const float* hr = ph + r * d;
    float* yr = py + r * d;
#pragma omp simd
    for (int64_t i = 0; i < d; ++i) yr[i] = f(hr[i] + pb[i]);
  }
  return y;
}

}  // namespace

// y = (x - mean) * rstd * w + b over the last axis; mean and rstd per row are kept for the backward.
std::vector<paddle::Tensor> LayerNormForward(const paddle::Tensor& x, const paddle::Tensor& w,
                                             const paddle::Tensor& b, float eps) {
  CheckFloat(x, "x");
  const int64_t d = Width(x), rows = x.numel() / d;
  auto y = paddle::empty_like(x);
  auto mean = paddle::empty({rows}, paddle::DataType::FLOAT32, x.place());
  auto rstd = paddle::empty({rows}, paddle::DataType::FLOAT32, x.place());
  const float *px = x.data<float>(), *pw = w.data<float>(), *pb = b.data<float>();
  float *py = y.data<float>(), *pm = mean.data<float>(), *pr = rstd.data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = px + r * d;
    float* yr = py + r * d;
    float sum = 0.f;
    for (int64_t i = 0; i < d; ++i) sum += xr[i];
    const float m = sum / d;
    float var = 0.f;  // two passes: the variance of centred values, as Paddle's kernel computes it
    for (int64_t i = 0; i < d; ++i) var += (xr[i] - m) * (xr[i] - m);
    const float rs = 1.f / std::sqrt(var / d + eps);
    for (int64_t i = 0; i < d; ++i) yr[i] = (xr[i] - m) * rs * pw[i] + pb[i];
    pm[r] = m;
    pr[r] = rs;
  }
  return {y, mean, rstd};
}

// With g = dy * w and xhat = (x - mean) * rstd: dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) per row;
// dw = sum over rows of dy * xhat, db = sum over rows of dy.
std::vector<paddle::Tensor> LayerNormBackward(const paddle::Tensor& x, const paddle::Tensor& w,
                                              const paddle::Tensor& mean, const paddle::Tensor& rstd,
                                              const paddle::Tensor& dy) {
  const int64_t d = Width(x), rows = x.numel() / d;
  auto dx = paddle::empty_like(x);
  auto dw = paddle::empty_like(w);
  auto db = paddle::empty_like(w);
  std::vector<float> sum_w(d, 0.f), sum_b(d, 0.f), xhat(d), g(d);
  const float *px = x.data<float>(), *pw = w.data<float>(), *pm = mean.data<float>(), *pr = rstd.data<float>(),
              *pdy = dy.data<float>();
  float* pdx = dx.data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const float *xr = px + r * d, *dyr = pdy + r * d;
    float* dxr = pdx + r * d;
    const float m = pm[r], rs = pr[r];
    float mean_g = 0.f, mean_gx = 0.f;
    for (int64_t i = 0; i < d; ++i) {
      xhat[i] = (xr[i] - m) * rs;
      g[i] = dyr[i] * pw[i];
      mean_g += g[i];
      mean_gx += g[i] * xhat[i];
      sum_w[i] += dyr[i] * xhat[i];
      sum_b[i] += dyr[i];
    }
    mean_g /= d;
    mean_gx /= d;
    for (int64_t i = 0; i < d; ++i) dxr[i] = rs * (g[i] - mean_g - xhat[i] * mean_gx);
  }
  std::copy(sum_w.begin(), sum_w.end(), dw.data<float>());
  std::copy(sum_b.begin(), sum_b.end(), db.data<float>());
  return {dx, dw, db};
}

// y = h + b over the last axis (a Linear's bias after its matrix product). The backward hands dy on as dh (the same
// buffer: nothing is copied) and sums it over rows for db.
std::vector<paddle::Tensor> BiasAddForward(const paddle::Tensor& h, const paddle::Tensor& b) {
  return {AddBiasThen(h, b, [](float x) { return x; })};
}

std::vector<paddle::Tensor> BiasAddBackward(const paddle::Tensor& b, paddle::Tensor& dy) {
  const int64_t d = Width(dy), rows = dy.numel() / d;
  auto db = paddle::empty_like(b);
  std::vector<float> sum_b(d, 0.f);
  const float* pdy = dy.data<float>();
  for (int64_t r = 0; r < rows; ++r) {
#pragma omp simd
    for (int64_t i = 0; i < d; ++i) sum_b[i] += pdy[r * d + i];
  }
  std::copy(sum_b.begin(), sum_b.end(), db.data<float>());
  return {db};
}

// y = gelu(h + b), the erf form, with b added over the last axis (a Linear's bias after its matrix product).
std::vector<paddle::Tensor> BiasGeluForward(const paddle::Tensor& h, const paddle::Tensor& b) {
  return {AddBiasThen(h, b, [](float x) { return 0.5f * x * (1.f + erff(x * 0.70710678f)); })};
}

// d/dx gelu(x) = Phi(x) + x * phi(x); dh = dy * that, db = its sum over rows.
std::vector<paddle::Tensor> BiasGeluBackward(const paddle::Tensor& h, const paddle::Tensor& b,
                                             const paddle::Tensor& dy) {
  const int64_t d = Width(h), rows = h.numel() / d;
  auto dh = paddle::empty_like(h);
  auto db = paddle::empty_like(b);
  std::vector<float> sum_b(d, 0.f);
  const float *ph = h.data<float>(), *pb = b.data<float>(), *pdy = dy.data<float>();
  float* pdh = dh.data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const float *hr = ph + r * d, *dyr = pdy + r * d;
    float* dhr = pdh + r * d;
#pragma omp simd
    for (int64_t i = 0; i < d; ++i) {
      const float x = hr[i] + pb[i];
      const float cdf = 0.5f * (1.f + erff(x * 0.70710678f));
      const float pdf = 0.39894228f * expf(-0.5f * x * x);
      const float grad = dyr[i] * (cdf + x * pdf);
      dhr[i] = grad;
      sum_b[i] += grad;
    }
  }
  std::copy(sum_b.begin(), sum_b.end(), db.data<float>());
  return {dh, db};
}

namespace {

// Dropout's keep/drop decision for element i of a call with this seed: a 32-bit mix of (seed, i), recomputed in the
// backward instead of storing a mask. Integer-only, so the loops vectorise.
inline uint32_t Mix(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

// out[i] = keep(i) ? in[i] * scale : 0, where keep(i) holds with probability 1 - p (p = 0: a plain copy, no hashing)
void MaskedScale(const float* in, float* out, int64_t n, int seed, float p) {
  if (p <= 0.f) {
    std::copy(in, in + n, out);
    return;
  }
  const uint32_t key = Mix(static_cast<uint32_t>(seed) ^ 0x9e3779b9u);
  const uint32_t threshold = static_cast<uint32_t>(static_cast<double>(p) * 16777216.0);  // p in 24-bit steps
  const float scale = 1.f / (1.f - p);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t h = Mix(static_cast<uint32_t>(i) * 0x9e3779b1u ^ key) >> 8;
    out[i] = h >= threshold ? in[i] * scale : 0.f;
  }
}

}  // namespace

// Dropout in Paddle's upscale_in_train mode: y = x * keep / (1 - p), the mask a function of (seed, position).
std::vector<paddle::Tensor> DropoutForward(const paddle::Tensor& x, int seed, float p) {
  CheckFloat(x, "x");
  auto y = paddle::empty_like(x);
  MaskedScale(x.data<float>(), y.data<float>(), x.numel(), seed, p);
  return {y};
}

std::vector<paddle::Tensor> DropoutBackward(const paddle::Tensor& dy, int seed, float p) {
  auto dx = paddle::empty_like(dy);
  MaskedScale(dy.data<float>(), dx.data<float>(), dy.numel(), seed, p);
  return {dx};
}

// Attention weights: w = dropout(softmax(z + mask)) over the last axis of z [batch, heads, queries, keys], the
// additive mask [batch, keys] the same for every head and query; the softmax s is kept for the backward.
std::vector<paddle::Tensor> SoftmaxDropoutForward(const paddle::Tensor& z, const paddle::Tensor& mask, int seed,
                                                  float p) {
  CheckFloat(z, "z");
  const int64_t keys = Width(z), rows = z.numel() / keys, per_batch = rows / z.shape()[0];
  auto w = paddle::empty_like(z);
  auto s = paddle::empty_like(z);
  const float *pz = z.data<float>(), *pm = mask.data<float>();
  float *pw = w.data<float>(), *ps = s.data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const float *zr = pz + r * keys, *mr = pm + (r / per_batch) * keys;
    float* sr = ps + r * keys;
    float top = -INFINITY;
    for (int64_t j = 0; j < keys; ++j) top = std::max(top, zr[j] + mr[j]);
    float total = 0.f;
    for (int64_t j = 0; j < keys; ++j) {
      sr[j] = std::exp(zr[j] + mr[j] - top);
      total += sr[j];
    }
    const float inv = 1.f / total;
    for (int64_t j = 0; j < keys; ++j) sr[j] *= inv;
  }
  MaskedScale(ps, pw, z.numel(), seed, p);
  return {w, s};
}

// dz = s * (ds - sum(ds * s)) per row, ds = dropout(dw) with the forward's masks.
std::vector<paddle::Tensor> SoftmaxDropoutBackward(const paddle::Tensor& s, const paddle::Tensor& dw, int seed,
                                                   float p) {
  const int64_t keys = Width(s), rows = s.numel() / keys;
  auto dz = paddle::empty_like(s);
  const float* ps = s.data<float>();
  float* pdz = dz.data<float>();
  MaskedScale(dw.data<float>(), pdz, s.numel(), seed, p);  // ds, overwritten row by row below
  for (int64_t r = 0; r < rows; ++r) {
    const float* sr = ps + r * keys;
    float* gr = pdz + r * keys;
    float dot = 0.f;
    for (int64_t j = 0; j < keys; ++j) dot += gr[j] * sr[j];
    for (int64_t j = 0; j < keys; ++j) gr[j] = sr[j] * (gr[j] - dot);
  }
  return {dz};
}

// [batch, length, heads * dim] -> [batch, heads, length, dim] (split) and back (merge): the attention heads'
// transposes as one copy each, without Paddle's generic transpose.
void MoveHeads(const float* in, float* out, int64_t batch, int64_t len, int64_t heads, int64_t dim, bool split) {
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < len; ++t)
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t packed = ((b * len + t) * heads + h) * dim, per_head = ((b * heads + h) * len + t) * dim;
        std::copy(in + (split ? packed : per_head), in + (split ? packed : per_head) + dim,
                  out + (split ? per_head : packed));
      }
}

std::vector<paddle::Tensor> SplitHeadsForward(const paddle::Tensor& x, int heads) {
  CheckFloat(x, "x");
  const int64_t batch = x.shape()[0], len = x.shape()[1], dim = x.shape()[2] / heads;
  auto y = paddle::empty({batch, heads, len, dim}, paddle::DataType::FLOAT32, x.place());
  MoveHeads(x.data<float>(), y.data<float>(), batch, len, heads, dim, true);
  return {y};
}

std::vector<paddle::Tensor> SplitHeadsBackward(const paddle::Tensor& dy, int heads) {
  const int64_t batch = dy.shape()[0], len = dy.shape()[2], dim = dy.shape()[3];
  auto dx = paddle::empty({batch, len, heads * dim}, paddle::DataType::FLOAT32, dy.place());
  MoveHeads(dy.data<float>(), dx.data<float>(), batch, len, heads, dim, false);
  return {dx};
}

std::vector<paddle::Tensor> MergeHeadsForward(const paddle::Tensor& x) {
  CheckFloat(x, "x");
  const int64_t batch = x.shape()[0], heads = x.shape()[1], len = x.shape()[2], dim = x.shape()[3];
  auto y = paddle::empty({batch, len, heads * dim}, paddle::DataType::FLOAT32, x.place());
  MoveHeads(x.data<float>(), y.data<float>(), batch, len, heads, dim, false);
  return {y};
}

std::vector<paddle::Tensor> MergeHeadsBackward(const paddle::Tensor& x, const paddle::Tensor& dy) {
  const int64_t batch = x.shape()[0], heads = x.shape()[1], len = x.shape()[2], dim = x.shape()[3];
  auto dx = paddle::empty_like(x);
  MoveHeads(dy.data<float>(), dx.data<float>(), batch, len, heads, dim, true);
  return {dx};
}

PD_BUILD_OP(compiled_softmax_dropout)
    .Inputs({"Z", "Mask"})
    .Outputs({"W", "S"})
    .Attrs({"seed: int", "p: float"})
    .SetKernelFn(PD_KERNEL(SoftmaxDropoutForward));
PD_BUILD_GRAD_OP(compiled_softmax_dropout)
    .Inputs({"S", paddle::Grad("W")})
    .Outputs({paddle::Grad("Z")})
    .Attrs({"seed: int", "p: float"})
    .SetKernelFn(PD_KERNEL(SoftmaxDropoutBackward));

PD_BUILD_OP(compiled_split_heads)
    .Inputs({"X"})
    .Outputs({"Y"})
    .Attrs({"heads: int"})
    .SetKernelFn(PD_KERNEL(SplitHeadsForward));
PD_BUILD_GRAD_OP(compiled_split_heads)
    .Inputs({paddle::Grad("Y")})
    .Outputs({paddle::Grad("X")})
    .Attrs({"heads: int"})
    .SetKernelFn(PD_KERNEL(SplitHeadsBackward));

PD_BUILD_OP(compiled_merge_heads)
    .Inputs({"X"})
    .Outputs({"Y"})
    .SetKernelFn(PD_KERNEL(MergeHeadsForward));
PD_BUILD_GRAD_OP(compiled_merge_heads)
    .Inputs({"X", paddle::Grad("Y")})
    .Outputs({paddle::Grad("X")})
    .SetKernelFn(PD_KERNEL(MergeHeadsBackward));

PD_BUILD_OP(compiled_dropout)
    .Inputs({"X"})
    .Outputs({"Y"})
    .Attrs({"seed: int", "p: float"})
    .SetKernelFn(PD_KERNEL(DropoutForward));
PD_BUILD_GRAD_OP(compiled_dropout)
    .Inputs({paddle::Grad("Y")})
    .Outputs({paddle::Grad("X")})
    .Attrs({"seed: int", "p: float"})
    .SetKernelFn(PD_KERNEL(DropoutBackward));

PD_BUILD_OP(compiled_layer_norm)
    .Inputs({"X", "W", "B"})
    .Outputs({"Y", "Mean", "Rstd"})
    .Attrs({"eps: float"})
    .SetKernelFn(PD_KERNEL(LayerNormForward));
PD_BUILD_GRAD_OP(compiled_layer_norm)
    .Inputs({"X", "W", "Mean", "Rstd", paddle::Grad("Y")})
    .Outputs({paddle::Grad("X"), paddle::Grad("W"), paddle::Grad("B")})
    .SetKernelFn(PD_KERNEL(LayerNormBackward));

PD_BUILD_OP(compiled_bias_add)
    .Inputs({"H", "B"})
    .Outputs({"Y"})
    .SetKernelFn(PD_KERNEL(BiasAddForward));
PD_BUILD_GRAD_OP(compiled_bias_add)
    .Inputs({"B", paddle::Grad("Y")})
    .Outputs({paddle::Grad("H"), paddle::Grad("B")})
    .SetInplaceMap({{paddle::Grad("Y"), paddle::Grad("H")}})
    .SetKernelFn(PD_KERNEL(BiasAddBackward));

PD_BUILD_OP(compiled_bias_gelu)
    .Inputs({"H", "B"})
    .Outputs({"Y"})
    .SetKernelFn(PD_KERNEL(BiasGeluForward));
PD_BUILD_GRAD_OP(compiled_bias_gelu)
    .Inputs({"H", "B", paddle::Grad("Y")})
    .Outputs({paddle::Grad("H"), paddle::Grad("B")})
    .SetKernelFn(PD_KERNEL(BiasGeluBackward));
