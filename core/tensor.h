// Tensor: an N-d view (shape, offset) over refcounted Storage, with a dtype, a device and the
// autograd metadata. Tensors are always contiguous in row-major (C) order: a view is an
// offset and a shape, never strides. reshape and narrow along the leading dimension are
// therefore views (the modality slices of a stacked batch cost nothing); every other
// re-arrangement is an op that writes a new tensor. Kernels can then assume dense memory.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "base/error.h"

namespace mmfuse {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& shape);
int64_t shape_numel(const Shape& shape);

class Generator;
namespace autograd { struct Node; }

// Device memory with an owner count. Allocation goes to the CPU heap or, for CUDA, to the
// caching allocator in cuda/.
class Storage {
 public:
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  DType dtype = DType::f32;
  // autograd
  bool requires_grad = false;  // meaningful for leaves; non-leaves require grad through grad_fn
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<autograd::Node> grad_fn;
  uint32_t output_nr = 0;
  std::weak_ptr<autograd::Node> grad_accumulator;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- creation -------------------------------------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32,
                     Device device = Device::cpu());
  // [start, end) with step, like numpy.arange.
  static Tensor arange(double start, double end, double step = 1, DType dtype = DType::f32,
                       Device device = Device::cpu());
  // Uniform in [low, high) and normal(mean, std), from a counter-based generator so that the
  // same seed gives the same numbers on every device.
  static Tensor rand(const Shape& shape, Generator& gen, double low = 0, double high = 1,
                     DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor randn(const Shape& shape, Generator& gen, double mean = 0, double std = 1,
                      DType dtype = DType::f32, Device device = Device::cpu());
  // From host values (converted to dtype).
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape,
                            DType dtype = dtype_of<T>::value, Device device = Device::cpu());
  static Tensor scalar(double value, DType dtype = DType::f32, Device device = Device::cpu());

  // ---- properties -----------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  // size(d) accepts negative d (counted from the end).
  int64_t size(int64_t d) const;
  int64_t numel() const { return shape_numel(impl().shape); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  bool is_cuda() const { return device().is_cuda(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  // "[2, 3] float32 cpu"
  std::string str() const;

  void* raw_data() const;
  template <typename T>
  T* data() const {
    MMF_CHECK(dtype() == dtype_of<T>::value, OpError, "Tensor::data: tensor is ", dtype_name(dtype()),
              ", asked for ", dtype_name(dtype_of<T>::value));
    return static_cast<T*>(raw_data());
  }
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }
  TensorImpl* unsafe_impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& other) const { return impl_ == other.impl_; }

  // ---- views (autograd-aware) -----------------------------------------------------------
  // One dimension may be -1 (inferred).
  Tensor reshape(const Shape& shape) const;
  Tensor flatten(int64_t start_dim = 0) const;  // keeps dims before start_dim
  // Rows [start, start+length) of the leading dimension, sharing storage.
  Tensor narrow(int64_t start, int64_t length) const;

  // ---- copies ---------------------------------------------------------------------------
  Tensor to(DType dtype) const;    // autograd-aware
  Tensor to(Device device) const;  // autograd-aware
  Tensor clone() const;            // autograd-aware
  // Copies src's values into this tensor's memory (same shape, any dtype/device). No autograd.
  void copy_(const Tensor& src) const;
  void fill_(double value) const;

  // ---- host access ----------------------------------------------------------------------
  template <typename T>
  std::vector<T> to_vector() const;  // any dtype/device, converted to T
  double item() const;               // numel must be 1

  // ---- autograd -------------------------------------------------------------------------
  bool requires_grad() const;  // leaf flag, or has grad_fn
  const Tensor& set_requires_grad(bool value = true) const;
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  Tensor grad() const { return Tensor(impl().grad); }
  void set_grad(const Tensor& g) const { impl().grad = g.impl_; }
  const std::shared_ptr<autograd::Node>& grad_fn() const { return impl().grad_fn; }
  // Same storage, no autograd history.
  Tensor detach() const;
  // Backward from this tensor: a scalar needs no gradient; otherwise pass d(loss)/d(this).
  void backward(const Tensor& gradient = Tensor(), bool retain_graph = false) const;

 private:
  TensorImpl& impl() const {
    MMF_CHECK(impl_ != nullptr, Error, "use of an undefined Tensor");
    return *impl_;
  }
  std::shared_ptr<TensorImpl> impl_;
};

// Copies count elements between buffers of the given dtypes and devices (any pair).
void copy_elements(const void* src, DType src_dtype, Device src_device, void* dst, DType dst_dtype,
                   Device dst_device, int64_t count);

}  // namespace mmfuse
