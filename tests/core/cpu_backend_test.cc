// Every CPU backend op against the naive double-precision reference in reference_ops.h.
#include <random>

#include "core/backend/cpu/cpu_backend.h"
#include "gtest/gtest.h"
#include "tests/core/reference_ops.h"

namespace strata {
namespace {

std::vector<float> Random(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// |a - b| <= atol + rtol * |b| for every element.
void ExpectClose(const std::vector<float>& a, const std::vector<float>& b, float atol, float rtol) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_NEAR(a[i], b[i], atol + rtol * std::fabs(b[i])) << "at index " << i;
  }
}

class CpuBackendTest : public ::testing::TestWithParam<int> {
 protected:
  CpuBackend backend_{CpuBackendOptions{GetParam()}};
};

TEST_P(CpuBackendTest, MatMulEveryDType) {
  const int n = 5, rows = 67, cols = 96;  // odd row count: uneven split over threads
  const std::vector<float> x = Random(n * cols, 1);
  const std::vector<float> wf = Random(rows * cols, 2);
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0}) {
    std::vector<uint8_t> wq(RowBytes(t, cols) * rows);
    for (int r = 0; r < rows; ++r) QuantizeRow(t, wf.data() + r * cols, wq.data() + r * RowBytes(t, cols), cols);
    const Tensor w{t, rows, cols, wq.data()};
    std::vector<float> got(n * rows), want(n * rows);
    backend_.MatMul(got.data(), x.data(), w, n);
    ref::MatMul(want.data(), x.data(), w, n);
    // Same dequantized weights on both sides: only f32 accumulation order differs, so the error
    // is bounded by ~cols * eps * sum|x·w| (≈ 96 * 6e-8 * 96 here).
    SCOPED_TRACE(DTypeName(static_cast<uint32_t>(t)));
    ExpectClose(got, want, 1e-4f, 1e-5f);
  }
}

TEST_P(CpuBackendTest, Norms) {
  const int n = 3, dim = 80;
  const std::vector<float> x = Random(n * dim, 3, 4.0f), w = Random(dim, 4), b = Random(dim, 5);
  std::vector<float> got(n * dim), want(n * dim);
  backend_.RmsNorm(got.data(), x.data(), w.data(), n, dim, 1e-5f);
  ref::RmsNorm(want.data(), x.data(), w.data(), n, dim, 1e-5f);
  ExpectClose(got, want, 1e-5f, 1e-5f);
  backend_.LayerNorm(got.data(), x.data(), w.data(), b.data(), n, dim, 1e-5f);
  ref::LayerNorm(want.data(), x.data(), w.data(), b.data(), n, dim, 1e-5f);
  ExpectClose(got, want, 1e-5f, 1e-5f);
}

TEST_P(CpuBackendTest, RopeBothLayoutsAndScaling) {
  const int n = 4, heads = 3, hd = 16;
  const int32_t pos[n] = {0, 1, 17, 2047};
  for (bool neox : {false, true}) {
    for (int rot : {16, 8}) {
      std::vector<float> got = Random(n * heads * hd, 6), want = got;
      backend_.Rope(got.data(), pos, n, heads, hd, RopeParams{rot, 10000.0f, 0.5f, neox});
      ref::Rope(want.data(), pos, n, heads, hd, rot, 10000.0, 0.5, neox);
      ExpectClose(got, want, 2e-5f, 1e-5f);
    }
  }
}

TEST_P(CpuBackendTest, Activations) {
  const std::vector<float> g = Random(100, 7, 6.0f), u = Random(100, 8, 2.0f);
  std::vector<float> got(100), want(100);
  backend_.SwiGlu(got.data(), g.data(), u.data(), 100);
  for (int i = 0; i < 100; ++i) want[i] = static_cast<float>(ref::Silu(g[i]) * u[i]);
  ExpectClose(got, want, 1e-6f, 1e-5f);
  got = g;
  backend_.Gelu(got.data(), 100);
  for (int i = 0; i < 100; ++i) want[i] = static_cast<float>(ref::Gelu(g[i]));
  ExpectClose(got, want, 1e-6f, 1e-5f);
  got = g;
  backend_.Add(got.data(), u.data(), 100);
  for (int i = 0; i < 100; ++i) want[i] = g[i] + u[i];
  ExpectClose(got, want, 0, 0);
}

TEST_P(CpuBackendTest, EmbedAndGather) {
  const int vocab = 10, dim = 64;
  const std::vector<float> table = Random(vocab * dim, 9);
  std::vector<uint8_t> q8(RowBytes(DType::kQ8_0, dim) * vocab);
  for (int r = 0; r < vocab; ++r) QuantizeRow(DType::kQ8_0, &table[r * dim], &q8[r * RowBytes(DType::kQ8_0, dim)], dim);
  const int32_t ids[3] = {7, 0, 7};
  std::vector<float> got(3 * dim), want(3 * dim);
  backend_.Embed(got.data(), Tensor{DType::kQ8_0, vocab, dim, q8.data()}, ids, 3);
  for (int i = 0; i < 3; ++i) {
    std::vector<float> row = ref::WeightRow(Tensor{DType::kQ8_0, vocab, dim, q8.data()}, ids[i]);
    std::copy(row.begin(), row.end(), want.begin() + i * dim);
  }
  ExpectClose(got, want, 0, 0);
  const int32_t rows[2] = {2, 0};
  std::vector<float> g(2 * dim);
  backend_.GatherRows(g.data(), got.data(), rows, 2, dim);
  EXPECT_EQ(std::vector<float>(g.begin(), g.begin() + dim), std::vector<float>(got.begin() + 2 * dim, got.end()));
}

// Paged attention over three sequences with scattered blocks: one decoding at position 20, one
// prefilling a chunk of 5 starting at 3, one fresh prefill of 7. Checked against dense attention.
TEST_P(CpuBackendTest, PagedAttentionMixedBatch) {
  const int heads = 4, kv_heads = 2, hd = 8, kv_dim = kv_heads * hd, bs = 4, n_blocks = 32;
  std::vector<float> kc(n_blocks * bs * kv_dim), vc(n_blocks * bs * kv_dim);
  const KvLayerView kv{kc.data(), vc.data(), bs, kv_dim};
  // Full K/V history of each sequence, dense: [len, kv_dim].
  const int lens[3] = {21, 8, 7}, starts[3] = {20, 3, 0};
  const std::vector<std::vector<int32_t>> tables = {{9, 3, 30, 1, 17, 5}, {2, 11}, {31, 0}};
  std::vector<std::vector<float>> K, V;
  for (int s = 0; s < 3; ++s) {
    K.push_back(Random(lens[s] * kv_dim, 20 + s));
    V.push_back(Random(lens[s] * kv_dim, 30 + s));
  }
  // History before this step goes straight into the cache; this step's tokens via StoreKv.
  Batch batch;
  std::vector<float> k_new, v_new;
  std::vector<int32_t> dummy_ids;
  for (int s = 0; s < 3; ++s) {
    for (int p = 0; p < starts[s]; ++p) {
      const int slot = tables[s][p / bs] * bs + p % bs;
      std::copy_n(&K[s][p * kv_dim], kv_dim, &kc[slot * kv_dim]);
      std::copy_n(&V[s][p * kv_dim], kv_dim, &vc[slot * kv_dim]);
    }
    const int n = lens[s] - starts[s];
    dummy_ids.assign(n, 0);
    batch.AddSequence(dummy_ids.data(), n, starts[s], tables[s], bs, true);
    k_new.insert(k_new.end(), K[s].begin() + starts[s] * kv_dim, K[s].end());
    v_new.insert(v_new.end(), V[s].begin() + starts[s] * kv_dim, V[s].end());
  }
  const int T = batch.n_tokens();
  backend_.StoreKv(kv, k_new.data(), v_new.data(), batch.slots.data(), T);
  const std::vector<float> q = Random(T * heads * hd, 40);
  std::vector<float> got(T * heads * hd), want(T * heads * hd);
  backend_.Attention(got.data(), q.data(), kv, batch, AttentionShape{heads, kv_heads, hd, 1.0f / std::sqrt(8.0f)});
  for (const SeqStep& step : batch.seqs) {
    const int s = static_cast<int>(&step - batch.seqs.data());
    for (int i = 0; i < step.n_tokens; ++i) {
      const int t = step.first_token + i;
      ref::AttentionOne(&want[t * heads * hd], &q[t * heads * hd], K[s], V[s], step.start_pos + i + 1, heads,
                        kv_heads, hd);
    }
  }
  ExpectClose(got, want, 1e-5f, 1e-4f);
}

INSTANTIATE_TEST_SUITE_P(Threads, CpuBackendTest, ::testing::Values(1, 3),
                         [](const ::testing::TestParamInfo<int>& i) { return "threads" + std::to_string(i.param); });

}  // namespace
}  // namespace strata
