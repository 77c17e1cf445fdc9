"""An optional C++ kernel for the sparse depthwise sum, compiled on first use (``torch.utils.cpp_extension``).

It needs only a C++ compiler (no CUDA, nothing beyond pip); if compiling fails the ``native`` backend is simply
unavailable and the pure-PyTorch backends are used. The kernel map is an open-addressing lattice hash like
`funcdiff.operators.lattice.LatticeHash` (same hash, memory in the number of points), and the sum reads each
neighbour's channel row directly, so nothing is scattered to the grid. The weight gradient is accumulated per
thread and reduced at the end. Threads come from PyTorch's own pool (``at::parallel_for``), so
``torch.set_num_threads`` applies and no second OpenMP runtime is loaded.
"""

import functools
import hashlib
import logging
import warnings
from types import ModuleType

logger = logging.getLogger(__name__)

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <vector>

static const int64_t GOLDEN = (int64_t)0x9E3779B97F4A7C15ULL;

torch::Tensor kernel_map(torch::Tensor index, torch::Tensor offsets, std::vector<int64_t> shape, int64_t per_batch) {
  // index: (b, n, d) int64 lattice positions; offsets: (k, d) int64. Returns (b n, k) int32 rows, -1 where absent.
  const int64_t b = index.size(0), n = index.size(1), d = index.size(2), k = offsets.size(0), m = b * n;
  const int64_t* idx = index.data_ptr<int64_t>();
  const int64_t* off = offsets.data_ptr<int64_t>();
  int bits = 4;
  while ((int64_t(1) << bits) < 2 * m) ++bits;
  const int64_t size = int64_t(1) << bits, mask = size - 1;
  const int shift = 64 - bits;
  std::vector<int64_t> keys(size, -1);
  std::vector<int32_t> rows(size, -1);
  auto key_of = [&](const int64_t* pos, int64_t batch) {
    int64_t key = 0;
    for (int64_t a = 0; a < d; ++a) key = key * shape[a] + pos[a];
    return key + batch * per_batch;
  };
  auto slot_of = [&](int64_t key) { return (int64_t)(((uint64_t)(key * GOLDEN)) >> shift) & mask; };
  for (int64_t p = 0; p < m; ++p) {
    const int64_t key = key_of(idx + p * d, p / n);
    int64_t s = slot_of(key);
    while (keys[s] != -1) s = (s + 1) & mask;
    keys[s] = key;
    rows[s] = (int32_t)p;
  }
  auto out = torch::empty({m, k}, torch::dtype(torch::kInt32));
  int32_t* nbr = out.data_ptr<int32_t>();
  at::parallel_for(0, m, 1024, [&](int64_t begin, int64_t end) {
  for (int64_t p = begin; p < end; ++p) {
    int64_t pos[3];
    for (int64_t t = 0; t < k; ++t) {
      bool inside = true;
      for (int64_t a = 0; a < d; ++a) {
        pos[a] = idx[p * d + a] + off[t * d + a];
        inside = inside && pos[a] >= 0 && pos[a] < shape[a];
      }
      int32_t row = -1;
      if (inside) {
        const int64_t key = key_of(pos, p / n);
        for (int64_t s = slot_of(key); keys[s] != -1; s = (s + 1) & mask) {
          if (keys[s] == key) { row = rows[s]; break; }
        }
      }
      nbr[p * k + t] = row;
    }
  }
  });
  return out;
}

template <typename T>
static void sum_impl(const T* x, const T* w, const int32_t* nbr, T* out, int64_t m, int64_t c, int64_t k) {
  at::parallel_for(0, m, 256, [&](int64_t begin, int64_t end) {
  for (int64_t p = begin; p < end; ++p) {
    T* o = out + p * c;
    for (int64_t j = 0; j < c; ++j) o[j] = 0;
    for (int64_t t = 0; t < k; ++t) {
      const int32_t q = nbr[p * k + t];
      if (q < 0) continue;
      const T* xq = x + (int64_t)q * c;
      const T* wt = w + t * c;
      #pragma omp simd
      for (int64_t j = 0; j < c; ++j) o[j] += wt[j] * xq[j];
    }
  }
  });
}

torch::Tensor sparse_sum(torch::Tensor x, torch::Tensor w_kc, torch::Tensor nbr) {
  // x: (m, c); w_kc: (k, c) taps-major; nbr: (m, k) int32. out[p] = sum_t w[t] * x[nbr[p, t]].
  auto out = torch::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sparse_sum", [&] {
    sum_impl<scalar_t>(x.data_ptr<scalar_t>(), w_kc.data_ptr<scalar_t>(), nbr.data_ptr<int32_t>(), out.data_ptr<scalar_t>(),
                       x.size(0), x.size(1), nbr.size(1));
  });
  return out;
}

template <typename T>
static void weight_grad_impl(const T* x, const T* g, const int32_t* nbr, T* out, int64_t m, int64_t c, int64_t k) {
  const int64_t threads = at::get_num_threads();
  std::vector<T> acc((size_t)threads * k * c, T(0));
  at::parallel_for(0, m, 256, [&](int64_t begin, int64_t end) {
    T* a = acc.data() + (size_t)at::get_thread_num() * k * c;
    for (int64_t p = begin; p < end; ++p) {
      const T* gp = g + p * c;
      for (int64_t t = 0; t < k; ++t) {
        const int32_t q = nbr[p * k + t];
        if (q < 0) continue;
        const T* xq = x + (int64_t)q * c;
        T* at = a + t * c;
        #pragma omp simd
        for (int64_t j = 0; j < c; ++j) at[j] += gp[j] * xq[j];
      }
    }
  });
  for (int64_t i = 0; i < k * c; ++i) {
    T s = 0;
    for (int64_t r = 0; r < threads; ++r) s += acc[(size_t)r * k * c + i];
    out[i] = s;
  }
}

torch::Tensor weight_grad(torch::Tensor x, torch::Tensor g, torch::Tensor nbr) {
  // (k, c): gw[t] = sum_p g[p] * x[nbr[p, t]].
  auto out = torch::empty({nbr.size(1), x.size(1)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "weight_grad", [&] {
    weight_grad_impl<scalar_t>(x.data_ptr<scalar_t>(), g.data_ptr<scalar_t>(), nbr.data_ptr<int32_t>(), out.data_ptr<scalar_t>(),
                               x.size(0), x.size(1), nbr.size(1));
  });
  return out;
}
"""

_FUNCTIONS = ["kernel_map", "sparse_sum", "weight_grad"]


@functools.cache
def load() -> ModuleType | None:
    """The compiled extension, building it on first call (cached on disk by PyTorch), or None if that fails."""
    from torch.utils import cpp_extension

    name = "funcdiff_sparse_" + hashlib.sha1(_SOURCE.encode()).hexdigest()[:10]
    logger.info("loading the native sparse convolution kernel %s (the first build takes about a minute)", name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cpp_extension.load_inline(
                name, cpp_sources=_SOURCE, functions=_FUNCTIONS, extra_cflags=["-O3", "-fopenmp-simd"],
                verbose=False,
            )
    except Exception as error:  # noqa: BLE001 - any build failure means: use the pure-PyTorch backends
        logger.warning("native sparse convolution kernel unavailable (%s); using pure PyTorch", error)
        return None
