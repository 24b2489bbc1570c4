#include "core/tensor.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <new>

#include "base/philox.h"
#include "core/autograd.h"
#include "core/random.h"
#ifdef MMFUSE_WITH_CUDA
#include "cuda/kernels.h"
#include "cuda/runtime.h"
#endif

namespace mmfuse {

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    MMF_CHECK(!__builtin_mul_overflow(n, d, &n), Error, "shape ", shape_str(shape),
              " has more elements than an int64 counts");
  return n;
}

// ---- Storage ----------------------------------------------------------------------------

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  if (device.is_cpu()) {
    // 64-byte alignment for vector loads; at least one byte so that data() is never null.
    size_t rounded = (std::max<size_t>(nbytes, 1) + 63) / 64 * 64;
    data_ = std::aligned_alloc(64, rounded);
    MMF_CHECK(data_ != nullptr, Error, "out of host memory allocating ", nbytes, " bytes");
  } else {
#ifdef MMFUSE_WITH_CUDA
    data_ = cuda::device_alloc(nbytes, device.index);
#else
    throw DeviceError("cannot allocate on " + device.str() + ": mmfuse was built without CUDA");
#endif
  }
}

Storage::~Storage() {
  if (device_.is_cpu()) {
    std::free(data_);
  } else {
#ifdef MMFUSE_WITH_CUDA
    cuda::device_free(data_, device_.index);
#endif
  }
}

// ---- element copies ---------------------------------------------------------------------

namespace {

void convert_host(const void* src, DType st, void* dst, DType dt, int64_t n) {
  if (st == dt) {
    std::memcpy(dst, src, static_cast<size_t>(n) * dtype_size(st));
    return;
  }
  visit_dtype(st, [&](auto s) {
    visit_dtype(dt, [&](auto d) {
      using S = decltype(s);
      using D = decltype(d);
      const S* in = static_cast<const S*>(src);
      D* out = static_cast<D*>(dst);
      if constexpr (std::is_floating_point_v<S> && std::is_integral_v<D> && !std::is_same_v<D, bool>) {
        // Out of D's range the plain cast is undefined: truncate toward zero into int64, then
        // wrap modulo 2^bits as numpy and PyTorch do (-2.25 -> u8 254); NaN and values beyond
        // int64 give 0.
        for (int64_t i = 0; i < n; ++i) {
          double v = static_cast<double>(in[i]);
          int64_t t = v > -9.2e18 && v < 9.2e18 ? static_cast<int64_t>(v) : 0;
          out[i] = static_cast<D>(t);
        }
      } else {
        for (int64_t i = 0; i < n; ++i) out[i] = static_cast<D>(in[i]);
      }
    });
  });
}

}  // namespace

void copy_elements(const void* src, DType st, Device sd, void* dst, DType dt, Device dd,
                   int64_t n) {
  if (n == 0) return;
  size_t src_bytes = static_cast<size_t>(n) * dtype_size(st);
  if (sd.is_cpu() && dd.is_cpu()) return convert_host(src, st, dst, dt, n);
#ifdef MMFUSE_WITH_CUDA
  if (st == dt) {
    if (sd.is_cpu()) return cuda::copy_to_device(dst, src, src_bytes, dd.index);
    if (dd.is_cpu()) return cuda::copy_to_host(dst, src, src_bytes, sd.index);
    MMF_CHECK(sd.index == dd.index, DeviceError, "copy between ", sd.str(), " and ", dd.str(),
              " is not supported");
    return cuda::copy_device_to_device(dst, src, src_bytes, sd.index);
  }
  if (sd.is_cuda() && dd.is_cuda()) {
    MMF_CHECK(sd.index == dd.index, DeviceError, "copy between ", sd.str(), " and ", dd.str(),
              " is not supported");
    return cuda::convert(src, st, dst, dt, n, sd.index);  // stays on the device
  }
  // Conversion across devices: convert on the host (input batches and checks, not a hot path).
  std::vector<unsigned char> staged(src_bytes), converted(static_cast<size_t>(n) * dtype_size(dt));
  if (sd.is_cpu()) std::memcpy(staged.data(), src, src_bytes);
  else cuda::copy_to_host(staged.data(), src, src_bytes, sd.index);
  convert_host(staged.data(), st, converted.data(), dt, n);
  if (dd.is_cpu()) std::memcpy(dst, converted.data(), converted.size());
  else cuda::copy_to_device(dst, converted.data(), converted.size(), dd.index);
#else
  (void)src_bytes;
  throw DeviceError("copy between " + sd.str() + " and " + dd.str() +
                    ": mmfuse was built without CUDA");
#endif
}

// ---- creation ---------------------------------------------------------------------------

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape)
    MMF_CHECK(d >= 0, OpError, "Tensor::empty: negative dimension in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(shape_numel(shape) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  return full(shape, 0.0, dtype, device);
}

Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) {
  return full(shape, 1.0, dtype, device);
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

Tensor Tensor::scalar(double value, DType dtype, Device device) { return full({}, value, dtype, device); }

void Tensor::fill_(double value) const {
  int64_t n = numel();
  if (device().is_cpu()) {
    visit_dtype(dtype(), [&](auto z) {
      using T = decltype(z);
      T* p = static_cast<T*>(raw_data());
      T v = static_cast<T>(value);
      for (int64_t i = 0; i < n; ++i) p[i] = v;
    });
    return;
  }
#ifdef MMFUSE_WITH_CUDA
  cuda::fill(raw_data(), dtype(), n, value, device().index);
#else
  Tensor host = full(shape(), value, dtype(), Device::cpu());
  copy_(host);
#endif
}

Tensor Tensor::arange(double start, double end, double step, DType dtype, Device device) {
  MMF_CHECK(step != 0, OpError, "arange: step must be non-zero");
  int64_t n = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((end - start) / step)));
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = start + step * static_cast<double>(i);
  return from_vector(v, {n}, dtype, device);
}

namespace {
Tensor random_tensor(const Shape& shape, Generator& gen, bool normal, double a, double b, DType dtype,
                     Device device) {
  MMF_CHECK(is_floating(dtype), OpError, normal ? "randn" : "rand", ": dtype must be floating, got ",
            dtype_name(dtype));
  int64_t n = shape_numel(shape);
  std::vector<double> v(n);
  uint64_t seed = gen.seed();
  uint64_t offset = gen.take(normal ? 2 * static_cast<uint64_t>(n) : static_cast<uint64_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    if (normal) {
      // Box–Muller on two words; 1 - u keeps the log argument in (0, 1].
      double u1 = 1.0 - philox::uniform(philox::word(seed, offset, 2 * i));
      double u2 = philox::uniform(philox::word(seed, offset, 2 * i + 1));
      v[i] = a + b * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
    } else {
      v[i] = a + (b - a) * philox::uniform(philox::word(seed, offset, i));
    }
  }
  return Tensor::from_vector(v, shape, dtype, device);
}
}  // namespace

Tensor Tensor::rand(const Shape& shape, Generator& gen, double low, double high, DType dtype,
                    Device device) {
  return random_tensor(shape, gen, false, low, high, dtype, device);
}

Tensor Tensor::randn(const Shape& shape, Generator& gen, double mean, double std, DType dtype,
                     Device device) {
  return random_tensor(shape, gen, true, mean, std, dtype, device);
}

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape, DType dtype, Device device) {
  MMF_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), OpError,
            "Tensor::from_vector: ", values.size(), " values for shape ", shape_str(shape));
  Tensor t = empty(shape, dtype, device);
  copy_elements(values.data(), dtype_of<T>::value, Device::cpu(), t.raw_data(), dtype, device,
                static_cast<int64_t>(values.size()));
  return t;
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  std::vector<T> out(static_cast<size_t>(numel()));
  copy_elements(raw_data(), dtype(), device(), out.data(), dtype_of<T>::value, Device::cpu(), numel());
  return out;
}

#define MMF_INSTANTIATE(T)                                                                     \
  template Tensor Tensor::from_vector<T>(const std::vector<T>&, const Shape&, DType, Device); \
  template std::vector<T> Tensor::to_vector<T>() const;
MMF_INSTANTIATE(float)
MMF_INSTANTIATE(double)
MMF_INSTANTIATE(int32_t)
MMF_INSTANTIATE(int64_t)
MMF_INSTANTIATE(uint8_t)
#undef MMF_INSTANTIATE

// ---- properties -------------------------------------------------------------------------

int64_t Tensor::size(int64_t d) const {
  int64_t nd = dim();
  int64_t i = d < 0 ? d + nd : d;
  MMF_CHECK(i >= 0 && i < nd, OpError, "size(", d, "): tensor of shape ", shape_str(shape()),
            " has ", nd, " dims");
  return impl().shape[i];
}

std::string Tensor::str() const {
  if (!defined()) return "(undefined)";
  return shape_str(shape()) + " " + dtype_name(dtype()) + " " + device().str();
}

void* Tensor::raw_data() const {
  const TensorImpl& t = impl();
  return static_cast<char*>(t.storage->data()) + t.offset * static_cast<int64_t>(dtype_size(t.dtype));
}

double Tensor::item() const {
  MMF_CHECK(numel() == 1, OpError, "item: tensor of shape ", shape_str(shape()), " has ", numel(),
            " elements, expected 1");
  return to_vector<double>()[0];
}

// ---- views ------------------------------------------------------------------------------

namespace {
Tensor make_view(const Tensor& base, Shape shape, int64_t extra_offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->offset = base.unsafe_impl()->offset + extra_offset;
  impl->shape = std::move(shape);
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}
}  // namespace

Tensor Tensor::reshape(const Shape& requested) const {
  Shape shape = requested;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      MMF_CHECK(infer < 0, OpError, "reshape: more than one -1 in ", shape_str(requested));
      infer = static_cast<int64_t>(i);
    } else {
      MMF_CHECK(shape[i] >= 0, OpError, "reshape: invalid shape ", shape_str(requested));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    MMF_CHECK(known > 0 && numel() % known == 0, OpError, "reshape: cannot reshape ",
              shape_str(this->shape()), " into ", shape_str(requested));
    shape[infer] = numel() / known;
  }
  MMF_CHECK(shape_numel(shape) == numel(), OpError, "reshape: cannot reshape ", shape_str(this->shape()),
            " (", numel(), " elements) into ", shape_str(requested));
  Tensor out = make_view(*this, shape, 0);
  Shape in_shape = this->shape();
  autograd::record("reshape", {*this}, {out},
                   [in_shape](const TensorList& g) -> TensorList { return {g[0].reshape(in_shape)}; });
  return out;
}

Tensor Tensor::flatten(int64_t start_dim) const {
  int64_t nd = dim();
  if (start_dim < 0) start_dim += nd;
  MMF_CHECK(start_dim >= 0 && start_dim <= nd, OpError, "flatten: start_dim out of range for ",
            shape_str(shape()));
  Shape s(shape().begin(), shape().begin() + start_dim);
  s.push_back(-1);
  if (numel() == 0) s.back() = 0;
  return reshape(s);
}

Tensor Tensor::narrow(int64_t start, int64_t length) const {
  MMF_CHECK(dim() >= 1, OpError, "narrow: tensor of shape ", shape_str(shape()), " has no leading dim");
  int64_t n0 = shape()[0];
  MMF_CHECK(start >= 0 && length >= 0 && start + length <= n0, OpError, "narrow: rows [", start, ", ",
            start + length, ") out of range for shape ", shape_str(shape()));
  Shape s = shape();
  s[0] = length;
  int64_t row = n0 ? numel() / n0 : 0;
  Tensor out = make_view(*this, s, start * row);
  Shape full_shape = shape();
  autograd::record("narrow", {*this}, {out}, [full_shape, start, length](const TensorList& g) -> TensorList {
    Tensor full = Tensor::zeros(full_shape, g[0].dtype(), g[0].device());
    full.narrow(start, length).copy_(g[0]);
    return {full};
  });
  return out;
}

// ---- copies -----------------------------------------------------------------------------

void Tensor::copy_(const Tensor& src) const {
  MMF_CHECK(src.numel() == numel(), OpError, "copy_: source ", src.str(), " into ", str());
  copy_elements(src.raw_data(), src.dtype(), src.device(), raw_data(), dtype(), device(), numel());
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == this->dtype()) return *this;
  Tensor out = empty(shape(), dtype, device());
  out.copy_(*this);
  DType from = this->dtype();
  if (is_floating(dtype) && is_floating(from))
    autograd::record("to_dtype", {*this}, {out}, [from](const TensorList& g) -> TensorList { return {g[0].to(from)}; });
  return out;
}

Tensor Tensor::to(Device device) const {
  if (device == this->device()) return *this;
  Tensor out = empty(shape(), dtype(), device);
  out.copy_(*this);
  Device from = this->device();
  autograd::record("to_device", {*this}, {out}, [from](const TensorList& g) -> TensorList { return {g[0].to(from)}; });
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  out.copy_(*this);
  autograd::record("clone", {*this}, {out}, [](const TensorList& g) -> TensorList { return {g[0]}; });
  return out;
}

// ---- autograd ---------------------------------------------------------------------------

bool Tensor::requires_grad() const { return impl().requires_grad || impl().grad_fn != nullptr; }

const Tensor& Tensor::set_requires_grad(bool value) const {
  MMF_CHECK(is_leaf(), OpError, "set_requires_grad: only leaf tensors (not results of ops) can be changed");
  MMF_CHECK(!value || is_floating(dtype()), OpError, "set_requires_grad: ", dtype_name(dtype()),
            " tensors cannot require gradients");
  impl().requires_grad = value;
  return *this;
}

Tensor Tensor::detach() const { return make_view(*this, shape(), 0); }

void Tensor::backward(const Tensor& gradient, bool retain_graph) const {
  autograd::backward({*this}, {gradient}, retain_graph);
}

}  // namespace mmfuse
