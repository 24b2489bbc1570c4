// The CUDA runtime: caching allocator (reuse, statistics, out-of-memory message), pinned
// buffers, fill and dtype conversion on the device, copies. Skipped without a GPU.
#include <algorithm>
#include <cmath>

#include "tests/cuda/cuda_parity.h"

#ifdef MMFUSE_WITH_CUDA
#include "cuda/runtime.h"
#endif

using namespace mmfuse;

#ifdef MMFUSE_WITH_CUDA
TEST_CASE("allocator bins: 512 B multiples up to 1 MiB, 2 MiB multiples above") {
  using cuda::allocation_size;
  CHECK(allocation_size(0) == 512);
  CHECK(allocation_size(1) == 512);
  CHECK(allocation_size(512) == 512);
  CHECK(allocation_size(513) == 1024);
  CHECK(allocation_size(size_t{1} << 20) == size_t{1} << 20);
  CHECK(allocation_size((size_t{1} << 20) + 1) == size_t{2} << 20);
  CHECK(allocation_size(size_t{3} << 20) == size_t{4} << 20);
  CHECK(cuda::format_bytes(1536) == "1.50 KiB");
  CHECK(cuda::format_bytes(100) == "100 B");
}

TEST_CASE("precision switch: matmul fp32 and convolution tf32 by default, as PyTorch") {
  CHECK(cuda::matmul_precision() == cuda::Precision::fp32);
  CHECK(cuda::conv_precision() == cuda::Precision::tf32);
  cuda::set_matmul_precision(cuda::Precision::tf32);
  CHECK(cuda::matmul_precision() == cuda::Precision::tf32);
  cuda::set_matmul_precision(cuda::Precision::fp32);
  CHECK(cuda::parse_precision("tf32") == cuda::Precision::tf32);
  CHECK_THROWS_WITH_AS(cuda::parse_precision("fp16"), "unknown precision 'fp16' (expected fp32 or tf32)", Error);
}
#endif

MMF_CUDA_TEST("allocator reuses a freed block without cudaMalloc") {
#ifdef MMFUSE_WITH_CUDA
  cuda::empty_cache(0);
  void* p = cuda::device_alloc(1000, 0);
  cuda::AllocatorStats s1 = cuda::allocator_stats(0);
  cuda::device_free(p, 0);
  CHECK(cuda::allocator_stats(0).allocated == s1.allocated - 1024);
  void* q = cuda::device_alloc(1000, 0);
  cuda::AllocatorStats s2 = cuda::allocator_stats(0);
  CHECK(q == p);
  CHECK(s2.reserved == s1.reserved);
  CHECK(s2.device_mallocs == s1.device_mallocs);
  CHECK(s2.cache_hits == s1.cache_hits + 1);
  cuda::device_free(q, 0);
  // Through tensors: a dead tensor's storage goes back to its bin.
  void* first = nullptr;
  {
    Tensor t = Tensor::empty({3, 37, 129}, DType::f32, Device::cuda(0));
    first = t.raw_data();
  }
  Tensor u = Tensor::empty({3, 37, 129}, DType::f32, Device::cuda(0));
  CHECK(u.raw_data() == first);
#endif
}

MMF_CUDA_TEST("allocator statistics: allocated, reserved, peak, empty_cache") {
#ifdef MMFUSE_WITH_CUDA
  cuda::empty_cache(0);
  cuda::AllocatorStats s0 = cuda::allocator_stats(0);
  CHECK(s0.reserved == s0.allocated);  // nothing cached after empty_cache
  cuda::reset_peak_stats(0);
  void* a = cuda::device_alloc(3 << 20, 0);  // 4 MiB bin
  void* b = cuda::device_alloc(100, 0);      // 512 B bin
  cuda::AllocatorStats s1 = cuda::allocator_stats(0);
  CHECK(s1.allocated == s0.allocated + (4 << 20) + 512);
  CHECK(s1.peak_allocated == s1.allocated);
  cuda::device_free(a, 0);
  cuda::AllocatorStats s2 = cuda::allocator_stats(0);
  CHECK(s2.allocated == s0.allocated + 512);
  CHECK(s2.cached() == s0.cached() + (4 << 20));
  CHECK(s2.peak_allocated == s1.peak_allocated);
  cuda::empty_cache(0);
  CHECK(cuda::allocator_stats(0).cached() == 0);
  cuda::device_free(b, 0);
  std::string summary = cuda::allocator_summary(0);
  INFO(summary);
  CHECK(summary.find("cuda:0 allocator: ") == 0);
  CHECK(summary.find("reserved") != std::string::npos);
#endif
}

MMF_CUDA_TEST("out of memory: says how much was asked, in use and cached") {
#ifdef MMFUSE_WITH_CUDA
  void* keep = cuda::device_alloc(1 << 20, 0);
  size_t petabyte = size_t{1} << 50;
  CHECK_THROWS_WITH_AS(cuda::device_alloc(petabyte, 0),
                       doctest::Contains("out of memory on cuda:0: asked for 1.00 PiB (1125899906842624 bytes)"),
                       DeviceError);
  CHECK_THROWS_WITH_AS(cuda::device_alloc(petabyte, 0), doctest::Contains("in use by tensors"), DeviceError);
  CHECK_THROWS_WITH_AS(cuda::device_alloc(petabyte, 0), doctest::Contains("cached (released, then retried)"),
                       DeviceError);
  // The allocator still works afterwards.
  void* p = cuda::device_alloc(4096, 0);
  CHECK(p != nullptr);
  cuda::device_free(p, 0);
  cuda::device_free(keep, 0);
  CHECK_THROWS_WITH_AS(cuda::device_alloc(16, 99), doctest::Contains("cuda:99 is not available"), DeviceError);
#endif
}

MMF_CUDA_TEST("pinned buffers are cached and copy both ways") {
#ifdef MMFUSE_WITH_CUDA
  auto* p = static_cast<float*>(cuda::pinned_alloc(1000 * sizeof(float)));
  for (int i = 0; i < 1000; ++i) p[i] = static_cast<float>(i) * 0.5f;
  Tensor t = Tensor::empty({1000}, DType::f32, Device::cuda(0));
  cuda::copy_to_device(t.raw_data(), p, 1000 * sizeof(float), 0);
  cuda::pinned_free(p);
  auto* q = static_cast<float*>(cuda::pinned_alloc(1000 * sizeof(float)));
  CHECK(q == p);  // reused after the copy finished
  cuda::copy_to_host(q, t.raw_data(), 1000 * sizeof(float), 0);
  CHECK(q[999] == 499.5f);
  cuda::pinned_free(q);
#endif
}

MMF_CUDA_TEST("fill, dtype conversion and copies stay exact on the device") {
  Device gpu = Device::cuda(0);
  Tensor f = Tensor::full({3, 37, 129}, 2.5, DType::f32, gpu);
  auto v = f.to_vector<float>();
  CHECK(std::all_of(v.begin(), v.end(), [](float x) { return x == 2.5f; }));
  CHECK(Tensor::zeros({7}, DType::i64, gpu).to_vector<int64_t>() == std::vector<int64_t>(7, 0));
  CHECK(Tensor::ones({5}, DType::u8, gpu).to_vector<uint8_t>() == std::vector<uint8_t>(5, 1));
  Tensor x = Tensor::from_vector<float>({1.75f, -2.25f, 3.5f, 0.f, 255.f}, {5}, DType::f32, gpu);
  Tensor d = x.to(DType::f64);
  CHECK(d.is_cuda());
  CHECK(d.to_vector<double>() == std::vector<double>{1.75, -2.25, 3.5, 0, 255});
  CHECK(x.to(DType::i32).to_vector<int32_t>() == std::vector<int32_t>{1, -2, 3, 0, 255});
  CHECK(x.to(DType::i32).to(DType::f32).to_vector<float>() == std::vector<float>{1, -2, 3, 0, 255});
  // Odd sizes and an unaligned view.
  Generator gen(7);
  Tensor big = Tensor::rand({1000003}, gen, -1, 1, DType::f32);
  Tensor on = big.to(gpu);
  CHECK(on.to(DType::f64).to(Device::cpu()).to_vector<double>() == big.to(DType::f64).to_vector<double>());
  Tensor rows = Tensor::rand({5, 37}, gen).to(gpu).narrow(1, 3);
  CHECK(rows.to(DType::f64).to_vector<double>() == rows.to(Device::cpu()).to(DType::f64).to_vector<double>());
  // Autograd through to(dtype) on the device.
  Tensor leaf = Tensor::ones({3}, DType::f32, gpu).set_requires_grad();
  leaf.to(DType::f64).backward(Tensor::full({3}, 2.0, DType::f64, gpu));
  CHECK(leaf.grad().is_cuda());
  CHECK(leaf.grad().to_vector<float>() == std::vector<float>{2, 2, 2});
}

MMF_CUDA_TEST("ops reject operands on different devices") {
  Tensor a = Tensor::ones({3}), b = Tensor::ones({3}, DType::f32, Device::cuda(0));
  CHECK_THROWS_WITH_AS(add(a, b),
                       "add: operands must share dtype and device, got [3] float32 cpu and [3] float32 cuda:0",
                       OpError);
}
