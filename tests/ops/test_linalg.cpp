// matmul and linear: forward values by hand and against naive loops, errors, float32 against
// float64, and gradient checks.
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <type_traits>

#include "core/cpu/dnnl.h"
#include "core/cpu/gemm.h"
#include "tests/gradcheck.h"
#include "tests/temp_dir.h"

using namespace mmfuse;
using mmfuse::testing::check_close;
using mmfuse::testing::check_same_bits_for_thread_counts;
using mmfuse::testing::random_input;

namespace {

// C = A B by three loops over [batch, M, K] x [batch, K, N] (batch 0: a 2-D operand reused).
std::vector<double> naive_matmul(const Tensor& a, const Tensor& b) {
  auto av = a.to_vector<double>(), bv = b.to_vector<double>();
  int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  int64_t batch = a.dim() == 3 ? a.size(0) : b.dim() == 3 ? b.size(0) : 1;
  std::vector<double> c(batch * M * N, 0.0);
  for (int64_t i = 0; i < batch; ++i) {
    int64_t ao = a.dim() == 3 ? i * M * K : 0, bo = b.dim() == 3 ? i * K * N : 0;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k) c[(i * M + m) * N + n] += av[ao + m * K + k] * bv[bo + k * N + n];
  }
  return c;
}

// Random row-major operands of a gemm stored inside wider rows (ld > width): op(A) is M x K,
// op(B) K x N, C M x N.
template <typename T>
struct GemmOperands {
  int64_t lda, ldb, ldc;
  std::vector<T> a, b, c;
  GemmOperands(bool ta, bool tb, int64_t M, int64_t N, int64_t K, Generator& gen) {
    const DType dtype = std::is_same_v<T, double> ? DType::f64 : DType::f32;
    lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 7;
    a = Tensor::randn({ta ? K : M, lda}, gen, 0, 1, dtype).template to_vector<T>();
    b = Tensor::randn({tb ? N : K, ldb}, gen, 0, 1, dtype).template to_vector<T>();
    c = Tensor::randn({M, ldc}, gen, 0, 1, dtype).template to_vector<T>();
  }
};

// gemm's result by loops in double: C as stored (leading dimension ldc, the padding past N kept)
// with alpha op(A) op(B) + beta C in its M x N part; beta == 0 ignores C's old contents.
template <typename T>
std::vector<double> reference_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                                   const std::vector<T>& a, int64_t lda, const std::vector<T>& b, int64_t ldb,
                                   double beta, const std::vector<T>& c, int64_t ldc) {
  std::vector<double> want(c.begin(), c.end());
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k)
        acc += static_cast<double>(ta ? a[k * lda + i] : a[i * lda + k]) * (tb ? b[j * ldb + k] : b[k * ldb + j]);
      want[i * ldc + j] = alpha * acc + (beta == 0 ? 0.0 : beta * static_cast<double>(c[i * ldc + j]));
    }
  return want;
}

}  // namespace

TEST_CASE("matmul 2-d by hand") {
  Tensor a = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = Tensor::from_vector<float>({7, 8, 9, 10, 11, 12}, {3, 2});
  Tensor c = matmul(a, b);
  CHECK(c.shape() == Shape{2, 2});
  CHECK(c.to_vector<float>() == std::vector<float>{58, 64, 139, 154});
}

TEST_CASE("matmul batched by hand, and 2-d operands broadcast over the batch") {
  // Batch 0 is the identity, batch 1 doubles.
  Tensor a = Tensor::from_vector<double>({1, 0, 0, 1, 2, 0, 0, 2}, {2, 2, 2});
  Tensor b = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2});
  CHECK(matmul(a, b).to_vector<double>() == std::vector<double>{1, 2, 3, 4, 10, 12, 14, 16});
  Tensor m = Tensor::from_vector<double>({0, 1, 1, 0}, {2, 2});  // swaps rows / columns
  Tensor ab = matmul(a, m), ba = matmul(m, b);
  CHECK(ab.shape() == Shape{2, 2, 2});
  CHECK(ab.to_vector<double>() == std::vector<double>{0, 1, 1, 0, 0, 2, 2, 0});
  CHECK(ba.to_vector<double>() == std::vector<double>{3, 4, 1, 2, 7, 8, 5, 6});

  Generator gen(7);
  for (auto [sa, sb] : std::vector<std::pair<Shape, Shape>>{{{5, 7}, {7, 3}}, {{3, 5, 7}, {3, 7, 1}},
                                                            {{3, 5, 7}, {7, 2}}, {{5, 7}, {3, 7, 4}},
                                                            // enough small products to run in parallel
                                                            {{16, 13, 17}, {16, 17, 11}}, {{13, 17}, {16, 17, 11}}}) {
    Tensor x = Tensor::randn(sa, gen, 0, 1, DType::f64), y = Tensor::randn(sb, gen, 0, 1, DType::f64);
    INFO(shape_str(sa) << " x " << shape_str(sb));
    check_close(matmul(x, y).to_vector<double>(), naive_matmul(x, y));
  }
}

TEST_CASE("matmul with empty sizes") {
  Tensor a = Tensor::ones({3, 0}, DType::f64), b = Tensor::ones({0, 2}, DType::f64);
  CHECK(matmul(a, b).to_vector<double>() == std::vector<double>(6, 0.0));
  CHECK(matmul(Tensor::ones({0, 4}), Tensor::ones({4, 2})).shape() == Shape{0, 2});
}

TEST_CASE("gemm_batched over an empty batch into a shared C leaves beta * C") {
  // The gradient of a [M, K] operand that matmul broadcasts over [0, K, N] is such a sum over
  // no batch item; cpu::gemm_batched once returned without writing C (stale memory).
  for (double beta : {0.0, 0.5, 1.0}) {
    std::vector<double> c(6, 7.0);
    cpu::gemm_batched<double>(false, true, 0, 3, 2, 4, 1.0, nullptr, 4, 0, nullptr, 4, 8, beta, c.data(), 2, 0);
    CHECK(c == std::vector<double>(6, 7.0 * beta));
  }
  Generator gen(5);
  Tensor a = random_input({3, 4}, gen), b = Tensor::ones({0, 4, 2}, DType::f64).set_requires_grad();
  sum(matmul(a, b)).backward();
  CHECK(a.grad().to_vector<double>() == std::vector<double>(12, 0.0));
}

TEST_CASE("matmul argument errors") {
  Tensor a = Tensor::ones({2, 3}), b = Tensor::ones({4, 5});
  CHECK_THROWS_WITH_AS(matmul(a, b), "matmul: [2, 3] x [4, 5]: inner sizes 3 and 4 differ", OpError);
  CHECK_THROWS_WITH_AS(matmul(Tensor::ones({2, 2, 3}), Tensor::ones({3, 3, 1})),
                       "matmul: [2, 2, 3] x [3, 3, 1]: batch sizes 2 and 3 differ", OpError);
  CHECK_THROWS_WITH_AS(matmul(Tensor::ones({3}), Tensor::ones({3, 1})),
                       "matmul: expects 2-d or 3-d operands, got [3] x [3, 1]", OpError);
  CHECK_THROWS_AS(matmul(a, Tensor::ones({3, 2}, DType::f64)), OpError);
}

TEST_CASE("linear by hand") {
  Tensor x = Tensor::from_vector<double>({1, 2, 3, -1, 0, 1}, {2, 3});
  Tensor w = Tensor::from_vector<double>({1, 0, 0, 1, 1, 1}, {2, 3});
  Tensor b = Tensor::from_vector<double>({10, 20}, {2});
  CHECK(linear(x, w).to_vector<double>() == std::vector<double>{1, 6, -1, 0});
  CHECK(linear(x, w, b).to_vector<double>() == std::vector<double>{11, 26, 9, 20});
  // Leading dims are kept; a 1-d input is one row.
  Tensor y = linear(x.reshape({2, 1, 3}), w, b);
  CHECK(y.shape() == Shape{2, 1, 2});
  CHECK(y.to_vector<double>() == std::vector<double>{11, 26, 9, 20});
  Tensor v = linear(Tensor::from_vector<double>({1, 2, 3}, {3}), w, b);
  CHECK(v.shape() == Shape{2});
  CHECK(v.to_vector<double>() == std::vector<double>{11, 26});
}

TEST_CASE("linear argument errors") {
  Tensor x = Tensor::ones({4, 3}), w = Tensor::ones({5, 2});
  CHECK_THROWS_WITH_AS(linear(x, w), "linear: input [4, 3] has 3 features, weight [5, 2] expects 2", OpError);
  CHECK_THROWS_WITH_AS(linear(x, Tensor::ones({5, 3, 1})), "linear: weight must be 2-d [out, in], got [5, 3, 1]",
                       OpError);
  CHECK_THROWS_WITH_AS(linear(x, Tensor::ones({5, 3}), Tensor::ones({4})),
                       "linear: bias [4] does not match weight [5, 3] (expected [5])", OpError);
}

TEST_CASE("matmul and linear in float32 agree with float64") {
  Generator gen(11);
  Tensor a = Tensor::randn({3, 17, 33}, gen, 0, 1, DType::f64), b = Tensor::randn({33, 9}, gen, 0, 1, DType::f64);
  Tensor bias = Tensor::randn({17}, gen, 0, 1, DType::f64);
  auto rel_close = [](const Tensor& f32, const Tensor& f64) {
    auto x = f32.to_vector<double>(), y = f64.to_vector<double>();
    double scale = 0, err = 0;
    for (size_t i = 0; i < y.size(); ++i) scale = std::max(scale, std::abs(y[i])), err = std::max(err, std::abs(x[i] - y[i]));
    CHECK(err <= 1e-4 * scale);
  };
  rel_close(matmul(a.to(DType::f32), b.to(DType::f32)), matmul(a, b));
  Tensor w = Tensor::randn({17, 33}, gen, 0, 1, DType::f64);
  rel_close(linear(a.to(DType::f32), w.to(DType::f32), bias.to(DType::f32)), linear(a, w, bias));
}

TEST_CASE("linear skips the gradients nobody asked for") {
  Generator gen(12);
  Tensor x = Tensor::randn({3, 4}, gen, 0, 1, DType::f64);  // no grad
  Tensor w = random_input({2, 4}, gen), b = Tensor::zeros({2}, DType::f64);
  sum(linear(x, w, b)).backward();
  CHECK(!x.grad().defined());
  CHECK(!b.grad().defined());
  // dW[o, i] = sum over rows of x[:, i].
  auto xs = sum(x, {0}).to_vector<double>(), dw = w.grad().to_vector<double>();
  for (int64_t o = 0; o < 2; ++o)
    for (int64_t i = 0; i < 4; ++i) CHECK(dw[o * 4 + i] == doctest::Approx(xs[i]));
}

TEST_CASE("gemm cut into blocks matches loops for every transpose, beta and leading dimension") {
  // Sizes that gemm cuts down (600 x 90 x 200: rows 256, 256, 88), across, and both (700 x 650
  // x 60: rows 256, 256, 188 by columns 320, 320, 10), and one it leaves whole; operands inside
  // wider rows (ld > width), C accumulated with beta.
  Generator gen(9);
  for (auto [M, N, K] : std::vector<std::array<int64_t, 3>>{{600, 90, 200}, {90, 600, 200}, {700, 650, 60}, {5, 9, 3}}) {
    for (int trans = 0; trans < 4; ++trans) {
      bool ta = trans & 1, tb = trans & 2;
      double beta = trans == 3 ? 0.0 : 0.5;
      GemmOperands<double> ops(ta, tb, M, N, K, gen);
      auto& [lda, ldb, ldc, a, b, c] = ops;
      std::vector<double> want = reference_gemm(ta, tb, M, N, K, 1.5, a, lda, b, ldb, beta, c, ldc);
      INFO(M << "x" << N << "x" << K << (ta ? " A^T" : "") << (tb ? " B^T" : "") << ", beta " << beta);
      cpu::gemm<double>(ta, tb, M, N, K, 1.5, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
      check_close(c, want);  // the padding past N included: untouched
    }
  }
}

TEST_CASE("float32 gemm on oneDNN and on OpenBLAS: every transpose, beta and leading dimension") {
  // With oneDNN built, float32 blocks run on its sgemm (MMFUSE_DNNL=0 or DnnlScope(false):
  // OpenBLAS). Both against loops in double; beta == 0 ignores C's old contents, NaN included;
  // the padding past N stays untouched.
  Generator gen(10);
  for (bool dnnl : {true, false}) {
    cpu::DnnlScope scope(dnnl);
    for (auto [M, N, K] : std::vector<std::array<int64_t, 3>>{{600, 90, 200}, {64, 500, 800}, {500, 800, 64}, {5, 9, 3}}) {
      for (int trans = 0; trans < 4; ++trans) {
        bool ta = trans & 1, tb = trans & 2;
        float beta = trans == 3 ? 0.0f : 0.5f;
        GemmOperands<float> ops(ta, tb, M, N, K, gen);
        auto& [lda, ldb, ldc, a, b, c] = ops;
        if (beta == 0.0f) c[0] = std::nanf("");
        std::vector<double> want = reference_gemm(ta, tb, M, N, K, 1.5, a, lda, b, ldb, beta, c, ldc);
        INFO((dnnl ? "oneDNN (where built) " : "OpenBLAS ") << M << "x" << N << "x" << K << (ta ? " A^T" : "")
                                                             << (tb ? " B^T" : "") << ", beta " << beta);
        cpu::gemm<float>(ta, tb, M, N, K, 1.5f, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
        double worst = 0;
        for (size_t i = 0; i < c.size(); ++i)
          worst = std::max(worst, std::abs(static_cast<double>(c[i]) - want[i]) / (1 + std::abs(want[i])));
        CHECK(worst < 1e-4 * std::sqrt(static_cast<double>(K)));
      }
    }
  }
}

TEST_CASE("matmul, linear and batched products: the same bits for any thread count") {
  // A product gemm leaves whole but OpenBLAS would share among its threads, products gemm cuts
  // into blocks (across, down and across, odd sizes), many small ones that run one per thread,
  // few large ones, and broadcast operands whose gradients sum the batch into one C; forward
  // and both gradients, float64 and float32.
  struct Case { const char* name; Shape a, b; };
  std::vector<Case> cases{{"one block, large enough for BLAS's own threads", {100, 120}, {120, 130}},
                          {"blocks across", {96, 300}, {300, 1000}},
                          {"blocks down and across", {700, 400}, {400, 650}},
                          {"odd sizes", {257, 301}, {301, 263}},
                          {"many small", {32, 13, 17}, {32, 17, 11}},
                          {"few large, right operand broadcast", {3, 200, 300}, {300, 400}},
                          {"left operand broadcast", {200, 300}, {4, 300, 250}}};
  for (DType dtype : {DType::f64, DType::f32}) {
    for (const Case& c : cases) {
      INFO(std::string(c.name) << (dtype == DType::f64 ? ", float64" : ", float32"));
      Generator gen(11);
      Tensor a = Tensor::randn(c.a, gen, 0, 1, dtype), b = Tensor::randn(c.b, gen, 0, 1, dtype);
      TensorList out = check_same_bits_for_thread_counts(
          [&] {
            Tensor ag = a.detach().set_requires_grad(), bg = b.detach().set_requires_grad();
            Tensor y = matmul(ag, bg);
            y.backward(tanh(y.detach()));
            return TensorList{y, ag.grad(), bg.grad()};
          },
          "y, da, db");
      if (dtype == DType::f64) check_close(out[0].to_vector<double>(), naive_matmul(a, b));
    }
    // An inner-product layer of LeNet's size (ip1: 800 -> 500 on a batch of 64), with bias.
    Generator gen(12);
    Tensor x = Tensor::randn({64, 800}, gen, 0, 1, dtype), w = Tensor::randn({500, 800}, gen, 0, 0.05, dtype);
    Tensor bias = Tensor::randn({500}, gen, 0, 1, dtype);
    check_same_bits_for_thread_counts(
        [&] {
          Tensor xg = x.detach().set_requires_grad(), wg = w.detach().set_requires_grad();
          Tensor bg = bias.detach().set_requires_grad();
          Tensor y = linear(xg, wg, bg);
          y.backward(tanh(y.detach()));
          return TensorList{y, xg.grad(), wg.grad(), bg.grad()};
        },
        "linear: y, dx, dw, db");
  }
}

TEST_CASE("linear's bias gradient, and sum over leading dims, add the rows in order in double") {
  // reduce_sum runs a reduction of the leading dims as column sums (cpu::column_sum): its bits
  // must be those of the definition, rows in order in double, rounded once; widths around its
  // column blocks of 256; mean's scale applied to the double sum.
  for (DType dtype : {DType::f32, DType::f64})
    for (int64_t out : {1, 10, 255, 256, 257, 700})
      for (int64_t rows : {1, 3, 64}) {
        CAPTURE(out);
        CAPTURE(rows);
        Generator gen(static_cast<uint64_t>(out * 100 + rows));
        Tensor x = Tensor::randn({rows, 5}, gen, 0, 1, dtype), w = Tensor::randn({out, 5}, gen, 0, 1, dtype);
        Tensor b = Tensor::zeros({out}, dtype).set_requires_grad();
        Tensor dy = Tensor::randn({rows, out}, gen, 0, 1e3, dtype);
        linear(x, w, b).backward(dy);
        const std::vector<double> d = dy.to(DType::f64).to_vector<double>();
        std::vector<double> sums(static_cast<size_t>(out), 0.0), means(static_cast<size_t>(out));
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t j = 0; j < out; ++j) sums[j] += d[r * out + j];
        for (int64_t j = 0; j < out; ++j) means[j] = sums[j] * (1.0 / static_cast<double>(rows));
        auto rounded = [&](const std::vector<double>& v) { return Tensor::from_vector<double>(v, {out}).to(dtype).to(DType::f64).to_vector<double>(); };
        CHECK(b.grad().to(DType::f64).to_vector<double>() == rounded(sums));
        // The same through sum and mean of a 4-d view: [rows, 1, out] -> reduce dims 0 and 1.
        Tensor d3 = dy.reshape({rows, 1, out});
        CHECK(sum(d3, {0, 1}).to(DType::f64).to_vector<double>() == rounded(sums));
        CHECK(mean(d3, {0}).to(DType::f64).to_vector<double>() == rounded(means));
      }
}

namespace {

// OpenBLAS's x86-64 core types whose GEMM kernels round differently, and the CPU flags (as
// /proc/cpuinfo names them) each one's kernels need. OpenBLAS runs a forced core type without
// asking the CPU: without the flags it dies of SIGILL (Bulldozer's FMA4 on a Zen 4).
struct CoreType {
  const char* name;
  std::vector<std::string> needs;
};
const std::vector<CoreType>& core_types() {
  static const std::vector<CoreType> types{
      {"Haswell", {"avx2", "fma"}},
      {"Zen", {"avx2", "fma"}},
      {"SkylakeX", {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}},
      {"Cooperlake", {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512_bf16"}},
      {"Sandybridge", {"avx"}},
      {"Bulldozer", {"avx", "fma4"}},
      {"Nehalem", {"sse4_2"}},
  };
  return types;
}

std::set<std::string> cpu_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    return {std::istream_iterator<std::string>(words), std::istream_iterator<std::string>()};
  }
  return {};
}

std::string lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

}  // namespace

// Skipped in the linalg suite; the ctest entry blas_core_types runs it (--no-skip). A CPU runs
// one OpenBLAS core type of its own; the others' kernels round differently (docs/reliability.md,
// "Determinism across thread counts and CPUs"), so every suite whose answers go through gemm is
// rerun, in a child process, with OpenBLAS forced onto each core type this CPU can execute.
TEST_CASE("the conv and linalg suites under every OpenBLAS core type this CPU runs" * doctest::skip()) {
  std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  std::set<std::string> flags = cpu_flags();
  mmfuse::testing::TempDir tmp("blas_core_types");
  int ran = 0;
  for (const CoreType& core : core_types()) {
    std::string missing;
    for (const std::string& flag : core.needs)
      if (!flags.count(flag)) missing += " " + flag;
    if (!missing.empty()) {
      MESSAGE(std::string(core.name) << ": skipped, this CPU lacks" << missing);
      continue;
    }
    std::string log = tmp / (std::string(core.name) + ".log");
    std::string cmd = "OPENBLAS_CORETYPE=" + std::string(core.name) + " OPENBLAS_VERBOSE=2 OMP_NUM_THREADS=2 '" + self +
                      "' --no-version --source-file='*test_conv.cpp,*test_linalg.cpp' > '" + log + "' 2>&1";
    int status = std::system(cmd.c_str());
    std::ifstream in(log);
    std::stringstream text;
    text << in.rdbuf();
    // OPENBLAS_VERBOSE=2 names the core it took: one it does not know falls back to another.
    if (lower(text.str()).find("core: " + lower(core.name)) == std::string::npos) {
      MESSAGE(std::string(core.name) << ": skipped, OpenBLAS chose another core:\n" << text.str().substr(0, 200));
      continue;
    }
    ++ran;
    std::string tail = text.str().substr(text.str().size() > 3000 ? text.str().size() - 3000 : 0);
    CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), core.name, ": the suites failed:\n", tail);
  }
  CHECK(ran > 0);
}

// The finite-difference gradient checks of the family: its op-case table (tests/op_cases/linalg.cpp).
TEST_CASE("gradcheck: the linalg table") { CHECK(testing::check_gradient_cases(testing::linalg_cases()) > 0); }
