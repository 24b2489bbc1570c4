#include "datasets/synthetic_rgbd.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "base/error.h"
#include "core/random.h"

namespace mmfuse::datasets {

namespace {

constexpr double kPi = std::numbers::pi;

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Philox key from the seed and the task; counter block from the index: sample i owns the
// 2^32 words [i * 2^32, (i + 1) * 2^32) of the stream, whatever was drawn before.
Generator sample_generator(uint64_t seed, int64_t index, uint64_t task) {
  MMF_CHECK(index >= 0 && index < (int64_t(1) << 31), Error, "synthetic RGB-D: sample index ", index,
            " out of range [0, 2^31)");
  Generator gen;
  gen.set_state(splitmix64(seed ^ task), static_cast<uint64_t>(index) << 32);
  return gen;
}

double uniform(Generator& gen, double lo, double hi) { return lo + (hi - lo) * gen.uniform(); }
double normal(Generator& gen) {  // Box-Muller
  double u1 = 1.0 - gen.uniform(), u2 = gen.uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * kPi * u2);
}

struct Rgb { double r, g, b; };

// HSV (hue in degrees, any value; s, v in [0, 1]) to RGB in [0, 1].
Rgb hsv(double hue, double s, double v) {
  hue = std::fmod(std::fmod(hue, 360.0) + 360.0, 360.0) / 60.0;
  int sector = static_cast<int>(hue) % 6;
  double f = hue - std::floor(hue), p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  switch (sector) {
    case 0: return {v, t, p};
    case 1: return {q, v, p};
    case 2: return {p, v, t};
    case 3: return {p, q, v};
    case 4: return {t, p, v};
    default: return {v, p, q};
  }
}

enum class Shape { disc, rectangle, triangle };
enum class Texture { plain, stripes, checks };

struct Object {
  int label = 0;  // segmentation class (0 for clutter)
  Shape shape = Shape::disc;
  double cx = 0, cy = 0, radius = 1, angle = 0;  // centre (pixels), circumradius, rotation
  double half_w = 1, half_h = 1;                 // rectangle half-extents
  double vx[3] = {}, vy[3] = {};                 // triangle vertices
  int geometry = 0;                              // 0 slab, 1 dome
  double slab_depth = 0;                         // g = 0: absolute depth of the flat front face
  double dome_base = 0, dome_height = 0;         // g = 1: relief above the local background
  Texture texture = Texture::plain;
  double period = 1, pattern_angle = 0;
  Rgb colour{}, colour2{};

  bool covers(double x, double y) const {
    double dx = x - cx, dy = y - cy;
    switch (shape) {
      case Shape::disc: return dx * dx + dy * dy <= radius * radius;
      case Shape::rectangle: {
        double u = dx * std::cos(angle) + dy * std::sin(angle), v = -dx * std::sin(angle) + dy * std::cos(angle);
        return std::abs(u) <= half_w && std::abs(v) <= half_h;
      }
      case Shape::triangle: {
        double s[3];
        for (int k = 0; k < 3; ++k) {
          int j = (k + 1) % 3;
          s[k] = (vx[j] - vx[k]) * (y - vy[k]) - (vy[j] - vy[k]) * (x - vx[k]);
        }
        return (s[0] >= 0 && s[1] >= 0 && s[2] >= 0) || (s[0] <= 0 && s[1] <= 0 && s[2] <= 0);
      }
    }
    return false;
  }
  double depth(double x, double y, double background) const {
    if (geometry == 0) return slab_depth;
    double r2 = ((x - cx) * (x - cx) + (y - cy) * (y - cy)) / (radius * radius);
    return background - dome_base - dome_height * std::sqrt(std::max(0.0, 1.0 - r2));
  }
  Rgb colour_at(double x, double y) const {
    double dx = x - cx, dy = y - cy;
    double u = dx * std::cos(pattern_angle) + dy * std::sin(pattern_angle);
    double v = -dx * std::sin(pattern_angle) + dy * std::cos(pattern_angle);
    bool second = false;
    if (texture == Texture::stripes) second = static_cast<int64_t>(std::floor(u / period)) % 2 != 0;
    if (texture == Texture::checks)
      second = (static_cast<int64_t>(std::floor(u / period)) + static_cast<int64_t>(std::floor(v / period))) % 2 != 0;
    return second ? colour2 : colour;
  }
};

struct Plane {
  double d0, tilt_x, tilt_y;
  int width, height;
  double at(double x, double y) const { return d0 + tilt_x * (x / width - 0.5) + tilt_y * (y / height - 0.5); }
};

// Shape, placement and geometry of one object; centre in [lo, hi] of the image, circumradius
// radius_frac * min(H, W).
Object place_object(Generator& gen, const Plane& plane, double lo, double hi, double radius_lo, double radius_hi) {
  Object o;
  o.shape = static_cast<Shape>(gen.below(3));
  o.cx = uniform(gen, lo, hi) * plane.width;
  o.cy = uniform(gen, lo, hi) * plane.height;
  o.radius = uniform(gen, radius_lo, radius_hi) * std::min(plane.width, plane.height);
  o.angle = uniform(gen, 0, 2 * kPi);
  double aspect = uniform(gen, 0.5, 1.0);  // rectangle: angle of the half-diagonal
  o.half_w = o.radius * std::cos(aspect);
  o.half_h = o.radius * std::sin(aspect);
  for (int k = 0; k < 3; ++k) {
    double a = o.angle + k * 2 * kPi / 3 + (k ? uniform(gen, -0.4, 0.4) : 0.0);
    o.vx[k] = o.cx + o.radius * std::cos(a);
    o.vy[k] = o.cy + o.radius * std::sin(a);
  }
  o.geometry = static_cast<int>(gen.below(2));
  o.slab_depth = plane.at(o.cx, o.cy) - uniform(gen, 0.4, 0.7);
  o.dome_base = 0.05;
  o.dome_height = uniform(gen, 0.15, 0.5);
  return o;
}

// Appearance family a: hue centred on 0, 120 or 240 degrees, +-75 (neighbouring families share
// 30 degrees); family texture plain / stripes / checks with a darker second colour.
void paint_object(Generator& gen, Object& o, int appearance) {
  double hue = appearance * 120.0 + uniform(gen, -75, 75);
  double s = uniform(gen, 0.3, 1.0), v = uniform(gen, 0.45, 0.95);
  o.colour = hsv(hue, s, v);
  // Draws in separate statements: the order of evaluation of function arguments is unspecified,
  // and the stream must be consumed in the documented order on every compiler.
  double hue2 = hue + uniform(gen, -20, 20), v2 = v * uniform(gen, 0.5, 0.7);
  o.colour2 = hsv(hue2, s, v2);
  o.texture = static_cast<Texture>(appearance);
  o.period = uniform(gen, 2.5, 5.0);
  o.pattern_angle = uniform(gen, 0, kPi);
}

Rgb background_colour(Generator& gen) {
  double h = uniform(gen, 0, 360), s = uniform(gen, 0.0, 0.4), v = uniform(gen, 0.35, 0.85);
  return hsv(h, s, v);
}

SyntheticRgbdSample render(const SyntheticRgbdSpec& spec, Generator& gen, const Plane& plane, Rgb bg_colour,
                           const std::vector<Object>& objects) {
  const int H = spec.height, W = spec.width;
  SyntheticRgbdSample s;
  s.rgb = Image(W, H, 3, 8);
  s.depth = Image(W, H, 1, 16);
  s.label = Image(W, H, 1, 8);
  std::vector<double> z(static_cast<size_t>(H) * W);
  // Background shading: a gentle linear gradient of brightness, unrelated to depth.
  double shade_x = uniform(gen, -0.15, 0.15), shade_y = uniform(gen, -0.15, 0.15);
  double gain = uniform(gen, 0.85, 1.15);  // global illumination
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      double px = x + 0.5, py = y + 0.5, bg = plane.at(px, py), depth = bg;
      double shade = 1 + shade_x * (px / W - 0.5) * 2 + shade_y * (py / H - 0.5) * 2;
      Rgb c{bg_colour.r * shade, bg_colour.g * shade, bg_colour.b * shade};
      int label = 0;
      for (const Object& o : objects) {
        if (!o.covers(px, py)) continue;
        double d = o.depth(px, py, bg);
        if (d < depth) {  // z-buffer: the surface nearest the camera is the one seen
          depth = d;
          c = o.colour_at(px, py);
          label = o.label;
        }
      }
      z[static_cast<size_t>(y) * W + x] = depth;
      s.label.at(y, x) = static_cast<uint16_t>(label);
      double rgb[3] = {c.r, c.g, c.b};
      for (int k = 0; k < 3; ++k) {
        double v = 255.0 * rgb[k] * gain + 4.0 * normal(gen);
        s.rgb.at(y, x, k) = static_cast<uint16_t>(std::clamp(std::lround(v), 0l, 255l));
      }
      double mm = 1000.0 * depth * (1 + spec.depth_noise * normal(gen));
      s.depth.at(y, x) = static_cast<uint16_t>(std::clamp(std::lround(mm), 1l, 65535l));
    }
  // Holes: along depth discontinuities (> 0.1 m to a 4-neighbour), as structured-light shadows do,
  // and in elliptical patches (dark or specular surfaces).
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      double d = z[static_cast<size_t>(y) * W + x];
      bool edge = false;
      const int nx[4] = {x - 1, x + 1, x, x}, ny[4] = {y, y, y - 1, y + 1};
      for (int k = 0; k < 4; ++k)
        if (nx[k] >= 0 && nx[k] < W && ny[k] >= 0 && ny[k] < H &&
            std::abs(z[static_cast<size_t>(ny[k]) * W + nx[k]] - d) > 0.1)
          edge = true;
      if (edge && gen.uniform() < spec.edge_hole_probability) s.depth.at(y, x) = 0;
    }
  int patches = static_cast<int>(gen.below(static_cast<uint64_t>(std::max(0, spec.max_hole_patches)) + 1));
  for (int p = 0; p < patches; ++p) {
    double cx = uniform(gen, 0, W), cy = uniform(gen, 0, H), rx = uniform(gen, 1.5, 5), ry = uniform(gen, 1.5, 5);
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) {
        double u = (x + 0.5 - cx) / rx, v = (y + 0.5 - cy) / ry;
        if (u * u + v * v <= 1) s.depth.at(y, x) = 0;
      }
  }
  return s;
}

Plane background_plane(Generator& gen, const SyntheticRgbdSpec& spec) {
  Plane plane{uniform(gen, 2.0, 4.0), uniform(gen, -0.3, 0.3), uniform(gen, -0.3, 0.3), spec.width, spec.height};
  return plane;
}

void check_spec(const SyntheticRgbdSpec& spec) {
  MMF_CHECK(spec.height >= 8 && spec.width >= 8 && spec.height <= 4096 && spec.width <= 4096, Error,
            "synthetic RGB-D: image size ", spec.height, "x", spec.width, " out of range [8, 4096]");
  MMF_CHECK(spec.min_objects >= 0 && spec.max_objects >= spec.min_objects, Error,
            "synthetic RGB-D: need 0 <= min_objects <= max_objects, got ", spec.min_objects, " and ",
            spec.max_objects);
  MMF_CHECK(spec.max_clutter >= 0 && spec.depth_noise >= 0 && spec.max_hole_patches >= 0, Error,
            "synthetic RGB-D: max_clutter, depth_noise and max_hole_patches must be >= 0");
}

}  // namespace

SyntheticRgbdSample make_synthetic_rgbd(const SyntheticRgbdSpec& spec, uint64_t seed, int64_t index) {
  check_spec(spec);
  Generator gen = sample_generator(seed, index, 0x5e96e47a710a0001ull);
  Plane plane = background_plane(gen, spec);
  Rgb bg = background_colour(gen);
  std::vector<Object> objects;
  int count = spec.min_objects + static_cast<int>(gen.below(spec.max_objects - spec.min_objects + 1));
  for (int i = 0; i < count; ++i) {
    int appearance = static_cast<int>(gen.below(kSyntheticAppearances));
    Object o = place_object(gen, plane, 0.1, 0.9, 0.18, 0.34);
    paint_object(gen, o, appearance);
    o.label = synthetic_seg_class(appearance, o.geometry);
    objects.push_back(o);
  }
  int clutter = static_cast<int>(gen.below(spec.max_clutter + 1));
  for (int i = 0; i < clutter; ++i) {
    Object o = place_object(gen, plane, 0.1, 0.9, 0.12, 0.22);
    o.colour = o.colour2 = background_colour(gen);
    o.label = 0;
    objects.push_back(o);
  }
  return render(spec, gen, plane, bg, objects);
}

SyntheticRgbdSample make_synthetic_rgbd_cls(const SyntheticRgbdSpec& spec, uint64_t seed, int64_t index) {
  check_spec(spec);
  Generator gen = sample_generator(seed, index, 0x5e96e47a710a0002ull);
  Plane plane = background_plane(gen, spec);
  Rgb bg = background_colour(gen);
  int appearance = static_cast<int>(gen.below(kSyntheticAppearances));
  Object o = place_object(gen, plane, 0.4, 0.6, 0.25, 0.35);
  paint_object(gen, o, appearance);
  o.label = synthetic_seg_class(appearance, o.geometry);
  SyntheticRgbdSample s = render(spec, gen, plane, bg, {o});
  s.class_index = 2 * appearance + o.geometry;
  return s;
}

}  // namespace mmfuse::datasets
