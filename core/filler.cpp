#include "core/filler.h"

#include <cmath>

#include "core/prototxt.h"

namespace mmfuse {

std::vector<std::string> filler_types() {
  return {"constant", "uniform", "gaussian", "positive_unitball", "xavier", "msra", "bilinear", "pytorch"};
}

int64_t fan_in_of(const Shape& s) { return s.empty() || s[0] == 0 ? 1 : shape_numel(s) / s[0]; }
int64_t fan_out_of(const Shape& s) { return s.size() < 2 || s[1] == 0 ? 1 : shape_numel(s) / s[1]; }

proto::FillerParameter make_filler(const std::string& type, float value) {
  proto::FillerParameter f;
  f.set_type(type);
  if (type == "constant") f.set_value(value);
  return f;
}

namespace {

// Draws on the CPU in float64 and copies into t (any dtype and device).
void assign(Tensor& t, const Tensor& values) { t.copy_(values); }

double variance_n(const proto::FillerParameter& f, int64_t fan_in, int64_t fan_out) {
  switch (f.variance_norm()) {
    case proto::FillerParameter::FAN_OUT: return static_cast<double>(fan_out);
    case proto::FillerParameter::AVERAGE: return (fan_in + fan_out) / 2.0;
    default: return static_cast<double>(fan_in);
  }
}

}  // namespace

void fill(Tensor& t, const proto::FillerParameter& f, Generator& gen, int64_t fan_in, int64_t fan_out) {
  const std::string& type = f.type();
  const Shape& shape = t.shape();
  MMF_CHECK(fan_in > 0 && fan_out > 0, OpError, "filler '", type, "': fans must be positive, got fan_in ",
            fan_in, ", fan_out ", fan_out, " for ", shape_str(shape));
  if (type == "constant") {
    t.fill_(f.value());
  } else if (type == "uniform") {
    MMF_CHECK(f.min() <= f.max(), OpError, "filler 'uniform': min ", f.min(), " > max ", f.max());
    assign(t, Tensor::rand(shape, gen, f.min(), f.max(), DType::f64));
  } else if (type == "gaussian") {
    Tensor v = Tensor::randn(shape, gen, f.mean(), f.std(), DType::f64);
    if (f.sparse() >= 0) {
      MMF_CHECK(!shape.empty() && shape[0] > 0, OpError, "filler 'gaussian' with sparse needs a leading dim, got ",
                shape_str(shape));
      double keep = static_cast<double>(f.sparse()) / static_cast<double>(shape[0]);
      Tensor u = Tensor::rand(shape, gen, 0, 1, DType::f64);
      double* pv = v.data<double>();
      const double* pu = u.data<double>();
      for (int64_t i = 0; i < v.numel(); ++i)
        if (pu[i] >= keep) pv[i] = 0;
    }
    assign(t, v);
  } else if (type == "positive_unitball") {
    Tensor v = Tensor::rand(shape, gen, 0, 1, DType::f64);
    int64_t rows = shape.empty() ? 1 : shape[0], cols = rows ? v.numel() / rows : 0;
    double* p = v.data<double>();
    for (int64_t r = 0; r < rows; ++r) {
      double s = 0;
      for (int64_t c = 0; c < cols; ++c) s += p[r * cols + c];
      for (int64_t c = 0; c < cols; ++c) p[r * cols + c] /= s;
    }
    assign(t, v);
  } else if (type == "xavier") {
    double bound = std::sqrt(3.0 / variance_n(f, fan_in, fan_out));
    assign(t, Tensor::rand(shape, gen, -bound, bound, DType::f64));
  } else if (type == "msra") {
    double std = std::sqrt(2.0 / variance_n(f, fan_in, fan_out));
    assign(t, Tensor::randn(shape, gen, 0, std, DType::f64));
  } else if (type == "pytorch") {
    double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    assign(t, Tensor::rand(shape, gen, -bound, bound, DType::f64));
  } else if (type == "bilinear") {
    // Caffe's BilinearFiller: each [K, K] slice is the separable tent of an upsampling by
    // factor f = ceil(K/2), centred at c = (2f - 1 - f % 2) / (2f).
    MMF_CHECK(shape.size() == 4 && shape[2] == shape[3], OpError,
              "filler 'bilinear': expects a [C_out, C_in, K, K] weight, got ", shape_str(shape));
    int64_t k = shape[3];
    double factor = std::ceil(k / 2.0);
    double c = (2 * factor - 1 - std::fmod(factor, 2.0)) / (2 * factor);
    std::vector<double> v(static_cast<size_t>(t.numel()));
    for (int64_t i = 0; i < t.numel(); ++i) {
      double x = static_cast<double>(i % k), y = static_cast<double>((i / k) % k);
      v[i] = (1 - std::abs(x / factor - c)) * (1 - std::abs(y / factor - c));
    }
    assign(t, Tensor::from_vector<double>(v, shape));
  } else {
    throw OpError("unknown filler type '" + type + "'" + did_you_mean(type, filler_types()) +
                  " (known: constant, uniform, gaussian, positive_unitball, xavier, msra, bilinear, pytorch)");
  }
}

}  // namespace mmfuse
