
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <vector>

static const int64_t GOLDEN = (int64_t)0x9E3779B97F4A7C15ULL;

// Input checks at the boundary: every kernel reads raw CPU pointers, so shapes, dtypes and layout are verified here.
static void check_cpu_contiguous(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

static void check_rows(const torch::Tensor& x, const torch::Tensor& nbr) {
  check_cpu_contiguous(x, "x");
  check_cpu_contiguous(nbr, "nbr");
  TORCH_CHECK(x.dim() == 2 && nbr.dim() == 2, "x must be (m, c) and nbr (m, k)");
  TORCH_CHECK(nbr.scalar_type() == torch::kInt32, "nbr must be int32");
  TORCH_CHECK(nbr.size(0) == x.size(0), "x and nbr must have the same number of rows");
}

// Open-addressing hash of the points' lattice keys (example, row-major position) -> row over the batch.
struct Lattice {
  const int64_t* idx;
  int64_t n, d, per_batch;
  std::vector<int64_t> shape, keys;
  std::vector<int32_t> rows;
  int64_t mask;
  int shift;

  Lattice(torch::Tensor index, std::vector<int64_t> shape_) : shape(shape_) {
    idx = index.data_ptr<int64_t>();
    n = index.size(1);
    d = index.size(2);
    per_batch = 1;
    for (auto s : shape) per_batch *= s;
    const int64_t m = index.size(0) * n;
    int bits = 4;
    while ((int64_t(1) << bits) < 2 * m) ++bits;
    mask = (int64_t(1) << bits) - 1;
    shift = 64 - bits;
    keys.assign(mask + 1, -1);
    rows.assign(mask + 1, -1);
    for (int64_t p = 0; p < m; ++p) {
      const int64_t key = key_of(idx + p * d, p / n);
      int64_t s = slot_of(key);
      while (keys[s] != -1) s = (s + 1) & mask;
      keys[s] = key;
      rows[s] = (int32_t)p;
    }
  }
  int64_t key_of(const int64_t* pos, int64_t batch) const {
    int64_t key = 0;
    for (int64_t a = 0; a < d; ++a) key = key * shape[a] + pos[a];
    return key + batch * per_batch;
  }
  int64_t slot_of(int64_t key) const { return (int64_t)(((uint64_t)(key * GOLDEN)) >> shift) & mask; }
  // Row of the point at lattice position pos of example batch, or -1 (also when pos is off the grid).
  int32_t find(const int64_t* pos, int64_t batch) const {
    for (int64_t a = 0; a < d; ++a) if (pos[a] < 0 || pos[a] >= shape[a]) return -1;
    const int64_t key = key_of(pos, batch);
    for (int64_t s = slot_of(key); keys[s] != -1; s = (s + 1) & mask) if (keys[s] == key) return rows[s];
    return -1;
  }
};

torch::Tensor kernel_map(torch::Tensor index, torch::Tensor offsets, std::vector<int64_t> shape) {
  // index: (b, n, d) int64 lattice positions; offsets: (k, d) int64. Returns (b n, k) int32 rows, -1 where absent.
  check_cpu_contiguous(index, "index");
  check_cpu_contiguous(offsets, "offsets");
  TORCH_CHECK(index.dim() == 3 && index.scalar_type() == torch::kInt64, "index must be (b, n, d) int64");
  TORCH_CHECK(offsets.dim() == 2 && offsets.scalar_type() == torch::kInt64 && offsets.size(1) == index.size(2),
              "offsets must be (k, d) int64 with the d of index");
  TORCH_CHECK(index.size(2) >= 1 && index.size(2) <= 3 && (int64_t)shape.size() == index.size(2), "shape must give 1 to 3 axes, one per index column");
  const Lattice lattice(index, shape);
  const int64_t d = lattice.d, n = lattice.n, k = offsets.size(0), m = index.size(0) * n;
  const int64_t* off = offsets.data_ptr<int64_t>();
  auto out = torch::empty({m, k}, torch::dtype(torch::kInt32));
  int32_t* nbr = out.data_ptr<int32_t>();
  at::parallel_for(0, m, 1024, [&](int64_t begin, int64_t end) {
    int64_t pos[3];
    for (int64_t p = begin; p < end; ++p) {
      for (int64_t t = 0; t < k; ++t) {
        for (int64_t a = 0; a < d; ++a) pos[a] = lattice.idx[p * d + a] + off[t * d + a];
        nbr[p * k + t] = lattice.find(pos, p / n);
      }
    }
  });
  return out;
}

// Squared distances are rounded as PyTorch rounds them (square, then add): no fused multiply-add, so equidistant
// points stay exactly tied and are ordered by lattice position like the PyTorch search's.
#if defined(__clang__)
#define KNN_NO_FMA _Pragma("clang fp contract(off)")
#else
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#define KNN_NO_FMA
#endif

std::vector<torch::Tensor> knn_grid(torch::Tensor index, std::vector<int64_t> shape, std::vector<int64_t> grid, int64_t k,
                                    double reach) {
  KNN_NO_FMA
  // For every example and node of `grid` (cell centres), the k nearest points: rows (b, nodes, k) and squared
  // distances in domain units. The window around a node grows (doubling `reach`, in domain units) until the k-th
  // distance found is within the window's inscribed radius, or the window covers the grid: the result is exact.
  check_cpu_contiguous(index, "index");
  TORCH_CHECK(index.dim() == 3 && index.scalar_type() == torch::kInt64, "index must be (b, n, d) int64");
  TORCH_CHECK(index.size(2) >= 1 && index.size(2) <= 3 && (int64_t)shape.size() == index.size(2) && grid.size() == shape.size(),
              "shape and grid must give one size per index column (1 to 3)");
  TORCH_CHECK(k >= 1 && k <= index.size(1), "k must lie in [1, n]");
  const Lattice lattice(index, shape);
  const int64_t b = index.size(0), d = lattice.d;
  int64_t nodes = 1;
  for (auto g : grid) nodes *= g;
  auto rows = torch::empty({b, nodes, k}, torch::dtype(torch::kInt64));
  auto dist = torch::empty({b, nodes, k}, torch::dtype(torch::kFloat64));
  int64_t* out_rows = rows.data_ptr<int64_t>();
  double* out_dist = dist.data_ptr<double>();
  at::parallel_for(0, b * nodes, 16, [&](int64_t begin, int64_t end) {
    std::vector<double> best_d(k);
    std::vector<int64_t> best_r(k);
    int64_t pos[3], lo[3], hi[3];
    double centre[3];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t batch = task / nodes;
      int64_t rest = task % nodes;
      for (int64_t a = d - 1; a >= 0; --a) {
        centre[a] = ((rest % grid[a]) + 0.5) / grid[a];
        rest /= grid[a];
      }
      for (double r = reach;; r *= 2) {
        bool whole = true;
        double sure = 1e300;
        for (int64_t a = 0; a < d; ++a) {
          const int64_t radius = std::min<int64_t>(shape[a], std::max<int64_t>(1, (int64_t)std::ceil(r * shape[a])));
          const int64_t base = (int64_t)std::floor(centre[a] * shape[a] - 0.5);
          lo[a] = base - radius + 1;
          hi[a] = base + radius;
          whole = whole && radius >= shape[a];
          sure = std::min(sure, (double)radius / shape[a]);
        }
        std::fill(best_d.begin(), best_d.end(), INFINITY);
        std::fill(best_r.begin(), best_r.end(), -1);
        for (int64_t a = 0; a < d; ++a) pos[a] = lo[a];
        while (true) {
          const int32_t row = lattice.find(pos, batch);
          if (row >= 0) {
            double dd = 0;
            for (int64_t a = 0; a < d; ++a) {
              const double delta = (pos[a] + 0.5) / shape[a] - centre[a];
              dd += delta * delta;
            }
            int64_t j = k - 1;
            if (dd < best_d[j]) {
              while (j > 0 && best_d[j - 1] > dd) { best_d[j] = best_d[j - 1]; best_r[j] = best_r[j - 1]; --j; }
              best_d[j] = dd;
              best_r[j] = row;
            }
          }
          int64_t a = d - 1;
          while (a >= 0 && ++pos[a] > hi[a]) { pos[a] = lo[a]; --a; }
          if (a < 0) break;
        }
        // Only a k-th distance clearly inside the window's inscribed radius is final: a point just outside may tie.
        if (whole || best_d[k - 1] < sure * sure * (1 - 1e-9)) break;
      }
      for (int64_t j = 0; j < k; ++j) {
        out_rows[task * k + j] = best_r[j];
        out_dist[task * k + j] = best_d[j];
      }
    }
  });
  return {rows, dist};
}

#if !defined(__clang__)
#pragma GCC pop_options
#endif

template <typename T>
static void sum_impl(const T* x, const T* w, const int32_t* nbr, T* out, int64_t m, int64_t c, int64_t k) {
  constexpr int64_t BLOCK = 64;  // channels accumulated in a local buffer that stays in L1
  at::parallel_for(0, m, 256, [&](int64_t begin, int64_t end) {
    T acc[BLOCK];
    for (int64_t p = begin; p < end; ++p) {
      for (int64_t j0 = 0; j0 < c; j0 += BLOCK) {
        const int64_t width = std::min(BLOCK, c - j0);
        for (int64_t j = 0; j < width; ++j) acc[j] = 0;
        for (int64_t t = 0; t < k; ++t) {
          const int32_t q = nbr[p * k + t];
          if (q < 0) continue;
          const T* xq = x + (int64_t)q * c + j0;
          const T* wt = w + t * c + j0;
          #pragma omp simd
          for (int64_t j = 0; j < width; ++j) acc[j] += wt[j] * xq[j];
        }
        for (int64_t j = 0; j < width; ++j) out[p * c + j0 + j] = acc[j];
      }
    }
  });
}

torch::Tensor sparse_sum(torch::Tensor x, torch::Tensor w_kc, torch::Tensor nbr) {
  // x: (m, c); w_kc: (k, c) taps-major; nbr: (m, k) int32. out[p] = sum_t w[t] * x[nbr[p, t]].
  check_rows(x, nbr);
  check_cpu_contiguous(w_kc, "w_kc");
  TORCH_CHECK(w_kc.dim() == 2 && w_kc.size(0) == nbr.size(1) && w_kc.size(1) == x.size(1), "w_kc must be (k, c)");
  TORCH_CHECK(w_kc.scalar_type() == x.scalar_type(), "x and w_kc must have one dtype");
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
  check_rows(x, nbr);
  check_cpu_contiguous(g, "g");
  TORCH_CHECK(g.sizes() == x.sizes() && g.scalar_type() == x.scalar_type(), "g must have the shape and dtype of x");
  auto out = torch::empty({nbr.size(1), x.size(1)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "weight_grad", [&] {
    weight_grad_impl<scalar_t>(x.data_ptr<scalar_t>(), g.data_ptr<scalar_t>(), nbr.data_ptr<int32_t>(), out.data_ptr<scalar_t>(),
                               x.size(0), x.size(1), nbr.size(1));
  });
  return out;
}
