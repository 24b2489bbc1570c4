// NumPy .npy files (format versions 1.0, 2.0 and 3.0), for exchanging tensors with Python:
// reference outputs, datasets, weights. Little-endian C-order arrays of float32, float64,
// int32, int64, uint8 and bool (loaded as uint8). Every failure is an IOError that names
// the path and the reason.
#pragma once
#include <cstddef>
#include <string>

#include "core/tensor.h"

namespace mmfuse {

// Reads a .npy file into a new CPU tensor.
Tensor load_npy(const std::string& path);
// The same from `size` bytes in memory (the whole file); `name` stands for the path in messages.
Tensor decode_npy(const void* data, size_t size, const std::string& name = "<memory>");

// Writes t (any device: it is copied to the host) as numpy.save would: format 1.0 (2.0 when
// the header needs more than 65535 bytes), the tensor's dtype, the same header bytes.
void save_npy(const std::string& path, const Tensor& t);

}  // namespace mmfuse
