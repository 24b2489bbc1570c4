#include "datasets/scenes.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include "base/error.h"
#include "core/random.h"
#include "datasets/data_layer.h"

namespace mmfuse::datasets {

const char* const kSceneModalityNames[kSceneModalities] = {"rgb", "depth", "normal", "shading", "albedo", "edges"};

int scene_modality_index(const std::string& name) {
  for (int m = 0; m < kSceneModalities; ++m)
    if (name == kSceneModalityNames[m]) return m;
  return -1;
}

const char* scene_class_name(int label) {
  static const char* const names[kSceneClasses] = {"ceiling", "floor", "wall", "wood box",
                                                   "metal box", "wood cylinder", "ball", "slab"};
  return label >= 0 && label < kSceneClasses ? names[label] : "?";
}

const Image& SceneImages::modality(int m) const {
  const Image* images[kSceneModalities] = {&rgb, &depth, &normal, &shading, &albedo, &edges};
  MMF_CHECK(m >= 0 && m < kSceneModalities, Error, "scenes: modality index ", m, " out of range [0, ",
            kSceneModalities, ")");
  return *images[m];
}

namespace {

using Vec = SceneVec;
using Colour = SceneColour;

Vec operator+(Vec a, Vec b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
Vec operator-(Vec a, Vec b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
Vec operator*(Vec a, double s) { return {a.x * s, a.y * s, a.z * s}; }
double dot(Vec a, Vec b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
Vec cross(Vec a, Vec b) { return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x}; }
Vec normalised(Vec a) { return a * (1.0 / std::sqrt(dot(a, a))); }
Colour operator*(Colour c, double s) { return {c.r * s, c.g * s, c.b * s}; }
Colour mix(Colour a, Colour b, double t) { return {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t}; }

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kEpsilon = 1e-7;  // metres: hits nearer than this along a ray are the ray's own surface

// Surface ids of the room (SceneImages::instance); object i is kFirstObjectId + i.
constexpr int kFloorId = 1, kCeilingId = 6, kFirstObjectId = 10;

double fract(double v) { return v - std::floor(v); }

// A value in [0, 1) for an integer lattice point: splitmix64 finaliser of the three coordinates.
double lattice(int64_t i, int64_t j, int64_t k) {
  uint64_t h = static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull ^ static_cast<uint64_t>(j) * 0xC2B2AE3D27D4EB4Full ^
               static_cast<uint64_t>(k) * 0x165667B19E3779F9ull;
  h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
  h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
  h ^= h >> 31;
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

// Trilinear value noise in [0, 1) with smoothstep weights: polynomial only, so bit-exact everywhere.
double value_noise(Vec p) {
  const double fx = std::floor(p.x), fy = std::floor(p.y), fz = std::floor(p.z);
  const int64_t i = static_cast<int64_t>(fx), j = static_cast<int64_t>(fy), k = static_cast<int64_t>(fz);
  auto smooth = [](double t) { return t * t * (3 - 2 * t); };
  const double u = smooth(p.x - fx), v = smooth(p.y - fy), w = smooth(p.z - fz);
  double c[2][2];
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b)
      c[a][b] = lattice(i + a, j + b, k) + (lattice(i + a, j + b, k + 1) - lattice(i + a, j + b, k)) * w;
  const double c0 = c[0][0] + (c[0][1] - c[0][0]) * v, c1 = c[1][0] + (c[1][1] - c[1][0]) * v;
  return c0 + (c1 - c0) * u;
}

double triangle_wave(double v) { return std::abs(2 * fract(v) - 1); }  // 1 at integers, 0 half-way

// The albedo of material `m` at point p of its own frame. grain_axis: the axis wood rings run along.
Colour albedo_of(const SceneMaterial& m, Vec p, int grain_axis) {
  p = p + m.offset;
  switch (m.kind) {
    case SceneMaterialKind::wood: {
      const double a = grain_axis == 0 ? p.y : p.x, b = grain_axis == 0 ? p.z : grain_axis == 1 ? p.z : p.y;
      const double r = std::sqrt(a * a + b * b);
      const double ring = triangle_wave(r / m.period + 0.8 * value_noise(p * (1.0 / (6 * m.period))));
      return mix(m.colour2, m.colour, ring);
    }
    case SceneMaterialKind::planks: {  // boards along x, period wide
      const double board = std::floor(p.z / m.period);
      const int64_t j = static_cast<int64_t>(board);
      const double tone = 0.85 + 0.3 * lattice(j, 7, 3);
      if (fract(p.z / m.period) < 0.05) return m.colour2 * 0.7;  // the seam between boards
      const double grain = triangle_wave((p.x + 3 * lattice(j, 1, 1)) / (0.6 * m.period) +
                                         0.5 * value_noise(Vec{p.x * 4, 0, p.z * 40}));
      return mix(m.colour2, m.colour, 0.5 + 0.5 * grain) * tone;
    }
    case SceneMaterialKind::tiles: {
      const double u = p.x / m.period, v = p.z / m.period;
      if (fract(u) < 0.04 || fract(v) < 0.04) return mix(m.colour, m.colour2, 0.5) * 0.6;  // grout
      const int64_t parity = static_cast<int64_t>(std::floor(u)) + static_cast<int64_t>(std::floor(v));
      return (parity & 1) ? m.colour2 : m.colour;
    }
    case SceneMaterialKind::paint: {
      const int64_t parity = static_cast<int64_t>(std::floor(p.x / m.period)) +
                             static_cast<int64_t>(std::floor(p.y / m.period)) +
                             static_cast<int64_t>(std::floor(p.z / m.period));
      return (parity & 1) ? m.colour2 : m.colour;
    }
    case SceneMaterialKind::metal:  // brushed along x
      return m.colour * (0.93 + 0.14 * value_noise(Vec{p.x * 4, p.y * 80, p.z * 80}));
    case SceneMaterialKind::rubber:
      return m.colour;
    case SceneMaterialKind::plaster:
      return m.colour * (0.93 + 0.07 * value_noise(p * (1.0 / m.period)));
  }
  return m.colour;
}

struct Hit {
  double t = kInf;
  Vec normal;  // world, unit, facing the ray
  Vec local;   // texture point in the surface's frame
  int id = 0;  // SceneImages::instance
};

// World -> object frame (rotation by -yaw about y) and back.
Vec to_local(const SceneObject& o, Vec v) { return {o.yaw_cos * v.x - o.yaw_sin * v.z, v.y, o.yaw_sin * v.x + o.yaw_cos * v.z}; }
Vec to_world(const SceneObject& o, Vec v) { return {o.yaw_cos * v.x + o.yaw_sin * v.z, v.y, -o.yaw_sin * v.x + o.yaw_cos * v.z}; }

// The nearest intersection of origin + t dir with object o at t in (kEpsilon, t_max); t = kInf if none.
Hit intersect(const SceneObject& o, Vec origin, Vec dir, double t_max) {
  Hit hit;
  const Vec lo = to_local(o, origin - o.centre), ld = to_local(o, dir);
  switch (o.shape) {
    case SceneShape::box: {
      double t_near = -kInf, t_far = kInf;
      int axis = -1;
      double sign = 0;
      const double org[3] = {lo.x, lo.y, lo.z}, d[3] = {ld.x, ld.y, ld.z}, h[3] = {o.half.x, o.half.y, o.half.z};
      for (int k = 0; k < 3; ++k) {
        if (d[k] == 0) {
          if (org[k] < -h[k] || org[k] > h[k]) return hit;
          continue;
        }
        double t1 = (-h[k] - org[k]) / d[k], t2 = (h[k] - org[k]) / d[k], s = -1;
        if (t1 > t2) {
          std::swap(t1, t2);
          s = 1;
        }
        if (t1 > t_near) {
          t_near = t1;
          axis = k;
          sign = s;
        }
        t_far = std::min(t_far, t2);
      }
      if (axis < 0 || t_near > t_far || t_near <= kEpsilon || t_near >= t_max) return hit;
      Vec n{axis == 0 ? sign : 0, axis == 1 ? sign : 0, axis == 2 ? sign : 0};
      hit.t = t_near;
      hit.normal = to_world(o, n);
      hit.local = lo + ld * t_near;
      return hit;
    }
    case SceneShape::sphere: {
      const double a = dot(ld, ld), b = dot(lo, ld), c = dot(lo, lo) - o.half.x * o.half.x;
      const double disc = b * b - a * c;
      if (disc < 0) return hit;
      const double t = (-b - std::sqrt(disc)) / a;
      if (t <= kEpsilon || t >= t_max) return hit;
      hit.t = t;
      hit.local = lo + ld * t;
      hit.normal = to_world(o, hit.local * (1.0 / o.half.x));
      return hit;
    }
    case SceneShape::cylinder: {
      const double r = o.half.x, hh = o.half.y;
      const double a = ld.x * ld.x + ld.z * ld.z;
      if (a > 0) {  // the side
        const double b = lo.x * ld.x + lo.z * ld.z, c = lo.x * lo.x + lo.z * lo.z - r * r, disc = b * b - a * c;
        if (disc >= 0) {
          const double t = (-b - std::sqrt(disc)) / a, y = lo.y + t * ld.y;
          if (t > kEpsilon && t < t_max && y >= -hh && y <= hh) {
            hit.t = t;
            hit.local = lo + ld * t;
            hit.normal = to_world(o, Vec{hit.local.x / r, 0, hit.local.z / r});
          }
        }
      }
      if (ld.y != 0) {  // the cap facing the ray
        const double cap = ld.y < 0 ? hh : -hh, t = (cap - lo.y) / ld.y;
        const Vec p = lo + ld * t;
        if (t > kEpsilon && t < std::min(t_max, hit.t) && p.x * p.x + p.z * p.z <= r * r) {
          hit.t = t;
          hit.local = p;
          hit.normal = Vec{0, ld.y < 0 ? 1.0 : -1.0, 0};
        }
      }
      return hit;
    }
  }
  return hit;
}

// The room's surface a ray from inside the room leaves through.
Hit intersect_room(const Scene& s, Vec origin, Vec dir) {
  Hit hit;
  auto consider = [&](double t, Vec n, int id) {
    if (t > kEpsilon && t < hit.t) {
      hit.t = t;
      hit.normal = n;
      hit.id = id;
    }
  };
  if (dir.y < 0) consider(-origin.y / dir.y, {0, 1, 0}, kFloorId);
  if (dir.y > 0) consider((s.height - origin.y) / dir.y, {0, -1, 0}, kCeilingId);
  if (dir.x < 0) consider((-s.half_x - origin.x) / dir.x, {1, 0, 0}, 2);
  if (dir.x > 0) consider((s.half_x - origin.x) / dir.x, {-1, 0, 0}, 3);
  if (dir.z < 0) consider((-s.half_z - origin.z) / dir.z, {0, 0, 1}, 4);
  if (dir.z > 0) consider((s.half_z - origin.z) / dir.z, {0, 0, -1}, 5);
  hit.local = origin + dir * hit.t;
  return hit;
}

Hit intersect_scene(const Scene& s, Vec origin, Vec dir) {
  Hit hit = intersect_room(s, origin, dir);
  for (size_t i = 0; i < s.objects.size(); ++i) {
    Hit h = intersect(s.objects[i], origin, dir, hit.t);
    if (h.t < hit.t) {
      hit = h;
      hit.id = kFirstObjectId + static_cast<int>(i);
    }
  }
  return hit;
}

bool occluded(const Scene& s, Vec point, Vec to_light) {
  for (const SceneObject& o : s.objects)
    if (intersect(o, point, to_light, 1.0).t < 1.0) return true;
  return false;
}

int label_of(const Scene& s, int id) {
  if (id == kFloorId) return kSceneFloor;
  if (id == kCeilingId) return kSceneCeiling;
  if (id < kFirstObjectId) return kSceneWall;
  return s.objects[static_cast<size_t>(id - kFirstObjectId)].label;
}

// The albedo at a hit: the object's material in its frame, or the room's with its decals.
Colour surface_albedo(const Scene& s, const Hit& hit) {
  if (hit.id >= kFirstObjectId) {
    const SceneObject& o = s.objects[static_cast<size_t>(hit.id - kFirstObjectId)];
    return albedo_of(o.material, hit.local, o.shape == SceneShape::box ? 0 : 1);
  }
  const Vec p = hit.local;
  for (const SceneDecal& d : s.decals) {
    if (d.surface + 1 != hit.id) continue;
    const double u = hit.id == kFloorId ? p.x : (hit.id <= 3 ? p.z : p.x), v = hit.id == kFloorId ? p.z : p.y;
    if (u >= d.u0 && u <= d.u1 && v >= d.v0 && v <= d.v1) return albedo_of(d.material, p, 1);
  }
  if (hit.id == kFloorId) return albedo_of(s.floor, p, 1);
  if (hit.id == kCeilingId) return albedo_of(s.ceiling, p, 1);
  return albedo_of(s.wall, p, 1);
}

uint16_t to8(double v) { return static_cast<uint16_t>(std::clamp(v, 0.0, 1.0) * 255 + 0.5); }

void check_size(int width, int height) {
  MMF_CHECK(width >= 8 && height >= 8 && width <= 4096 && height <= 4096, Error, "scenes: image size ", height,
            "x", width, " out of range [8, 4096]");
}

// A hand-built scene's numbers must make sense: patterns of positive size, objects of positive
// extent, a room around the camera.
void check_scene(const Scene& s) {
  auto check_material = [](const SceneMaterial& m, const char* what) {
    MMF_CHECK(m.period > 0, Error, "scenes: the ", what, " material's period must be positive, got ", m.period);
  };
  check_material(s.floor, "floor");
  check_material(s.wall, "wall");
  check_material(s.ceiling, "ceiling");
  for (const SceneObject& o : s.objects) {
    check_material(o.material, scene_class_name(o.label));
    MMF_CHECK(o.half.x > 0 && o.half.y > 0 && (o.shape != SceneShape::box || o.half.z > 0), Error,
              "scenes: a ", scene_class_name(o.label), " object needs positive extents, got (", o.half.x, ", ",
              o.half.y, ", ", o.half.z, ")");
  }
  for (const SceneDecal& d : s.decals) check_material(d.material, "decal");
  const SceneVec& c = s.camera.position;
  MMF_CHECK(s.camera.focal > 0, Error, "scenes: camera focal must be positive, got ", s.camera.focal);
  const SceneVec view = s.camera.target - c;
  MMF_CHECK(view.x != 0 || view.z != 0, Error,
            "scenes: the camera must not look straight up or down (or at its own position)");
  MMF_CHECK(std::abs(c.x) < s.half_x && std::abs(c.z) < s.half_z && c.y > 0 && c.y < s.height, Error,
            "scenes: the camera (", c.x, ", ", c.y, ", ", c.z, ") is not inside the room");
}

// ---- drawing a scene -------------------------------------------------------------------------

double uniform(Generator& gen, double lo, double hi) { return lo + (hi - lo) * gen.uniform(); }

Colour wood_colour(Generator& gen) {
  Colour c;
  c.r = uniform(gen, 0.45, 0.75);
  c.g = c.r * uniform(gen, 0.55, 0.72);
  c.b = c.g * uniform(gen, 0.4, 0.7);
  return c;
}
Colour random_colour(Generator& gen, double lo, double hi) {
  Colour c;
  c.r = uniform(gen, lo, hi);
  c.g = uniform(gen, lo, hi);
  c.b = uniform(gen, lo, hi);
  return c;
}

SceneMaterial wood_material(Generator& gen) {
  SceneMaterial m;
  m.kind = SceneMaterialKind::wood;
  m.colour = wood_colour(gen);
  m.colour2 = m.colour * uniform(gen, 0.55, 0.75);
  m.period = uniform(gen, 0.02, 0.05);
  m.offset.x = uniform(gen, -0.5, 0.5);
  m.offset.y = uniform(gen, -0.5, 0.5);
  m.offset.z = uniform(gen, -0.5, 0.5);
  return m;
}
SceneMaterial paint_material(Generator& gen) {
  SceneMaterial m;
  m.kind = SceneMaterialKind::paint;
  m.colour = random_colour(gen, 0.1, 0.9);
  m.colour2 = random_colour(gen, 0.1, 0.9);
  m.period = uniform(gen, 0.05, 0.15);
  return m;
}
SceneMaterial plaster_material(Generator& gen, double lo, double hi) {
  SceneMaterial m;
  m.kind = SceneMaterialKind::plaster;
  const double v = uniform(gen, lo, hi);
  m.colour = {v * uniform(gen, 0.9, 1.05), v * uniform(gen, 0.9, 1.05), v * uniform(gen, 0.9, 1.05)};
  m.period = 0.4;
  return m;
}

// The object of a category with its size and material (position and yaw drawn later).
SceneObject draw_object(Generator& gen, int label) {
  SceneObject o;
  o.label = label;
  switch (label) {
    case kSceneWoodBox:
    case kSceneMetalBox:
      o.shape = SceneShape::box;
      o.half.x = uniform(gen, 0.15, 0.4);
      o.half.y = uniform(gen, 0.15, 0.4);
      o.half.z = uniform(gen, 0.15, 0.4);
      break;
    case kSceneWoodCylinder:
      o.shape = SceneShape::cylinder;
      o.half.x = uniform(gen, 0.12, 0.3);
      o.half.y = uniform(gen, 0.15, 0.45);
      break;
    case kSceneBall:
      o.shape = SceneShape::sphere;
      o.half.x = o.half.y = uniform(gen, 0.15, 0.3);
      break;
    default:  // slab
      o.shape = SceneShape::box;
      o.half.x = uniform(gen, 0.2, 0.45);
      o.half.y = uniform(gen, 0.015, 0.04);
      o.half.z = uniform(gen, 0.2, 0.45);
      break;
  }
  if (label == kSceneWoodBox || label == kSceneWoodCylinder) {
    o.material = wood_material(gen);
  } else if (label == kSceneMetalBox) {
    o.material.kind = SceneMaterialKind::metal;
    const double v = uniform(gen, 0.45, 0.8);
    o.material.colour = {v, v, std::min(1.0, v * uniform(gen, 1.0, 1.08))};
  } else if (label == kSceneBall) {
    o.material.kind = SceneMaterialKind::rubber;
    const int dominant = static_cast<int>(gen.below(3));
    double c[3];
    for (int k = 0; k < 3; ++k) c[k] = k == dominant ? uniform(gen, 0.55, 0.9) : uniform(gen, 0.05, 0.35);
    o.material.colour = {c[0], c[1], c[2]};
  } else {
    o.material = paint_material(gen);
  }
  // Rotation about y from the half-angle tangent t in [-1, 1] (angles in [-90, 90] degrees):
  // a rational parametrisation, so no cos/sin is needed.
  const double t = uniform(gen, -1, 1);
  o.yaw_cos = (1 - t * t) / (1 + t * t);
  o.yaw_sin = 2 * t / (1 + t * t);
  o.centre.y = o.half.y;  // resting on the floor
  return o;
}

double footprint_radius(const SceneObject& o) {
  return o.shape == SceneShape::box ? std::sqrt(o.half.x * o.half.x + o.half.z * o.half.z) : o.half.x;
}

// The floor point seen at image fraction (u, v) (0..1 from the left / top), if the ray meets the floor.
bool floor_point(const Scene& s, double u, double v, double* x, double* z) {
  const SceneCamera& c = s.camera;
  const Vec f = normalised(c.target - c.position), r = normalised(cross(f, Vec{0, 1, 0})), up = cross(r, f);
  const Vec dir = f + r * ((u - 0.5) / c.focal) + up * ((0.5 - v) / c.focal);  // square image
  if (dir.y >= 0) return false;
  const double t = -c.position.y / dir.y;
  *x = c.position.x + t * dir.x;
  *z = c.position.z + t * dir.z;
  return true;
}

}  // namespace

Scene make_scene(const SceneSpec& spec, uint64_t seed, int64_t index) {
  check_size(spec.width, spec.height);
  MMF_CHECK(spec.min_objects >= 0 && spec.max_objects >= spec.min_objects && spec.max_objects <= 64, Error,
            "scenes: need 0 <= min_objects <= max_objects <= 64, got ", spec.min_objects, " and ", spec.max_objects);
  MMF_CHECK(spec.max_decals >= 0 && spec.contact_probability >= 0 && spec.contact_probability <= 1, Error,
            "scenes: need max_decals >= 0 and contact_probability in [0, 1]");
  MMF_CHECK(index >= 0 && index < (int64_t(1) << 31), Error, "scenes: sample index ", index,
            " out of range [0, 2^31)");
  // Philox key from the seed, counter block from the index (as the synthetic RGB-D source).
  Generator gen;
  gen.set_state(mix_seed(seed, 0x5ce9e5da7a5e0001ull), static_cast<uint64_t>(index) << 32);
  Scene s;
  s.half_x = uniform(gen, 2.0, 3.5);
  s.half_z = uniform(gen, 2.0, 3.5);
  s.height = uniform(gen, 2.4, 3.0);
  s.wall = plaster_material(gen, 0.55, 0.9);
  s.ceiling = plaster_material(gen, 0.8, 0.95);
  if (gen.below(2) == 0) {  // wooden planks, coloured like the wooden objects
    s.floor.kind = SceneMaterialKind::planks;
    s.floor.colour = wood_colour(gen);
    s.floor.colour2 = s.floor.colour * uniform(gen, 0.55, 0.75);
    s.floor.period = uniform(gen, 0.12, 0.25);
  } else {
    s.floor.kind = SceneMaterialKind::tiles;
    s.floor.colour = random_colour(gen, 0.35, 0.85);
    s.floor.colour2 = random_colour(gen, 0.35, 0.85);
    s.floor.period = uniform(gen, 0.3, 0.6);
  }
  SceneCamera& cam = s.camera;
  cam.position.x = uniform(gen, -0.5, 0.5) * s.half_x;
  cam.position.y = uniform(gen, 1.2, 1.9);
  cam.position.z = s.half_z - uniform(gen, 0.3, 0.8);
  cam.target.x = uniform(gen, -0.4, 0.4) * s.half_x;
  cam.target.y = uniform(gen, 0.0, 0.3);
  cam.target.z = std::max(-s.half_z + 0.3, cam.position.z - uniform(gen, 1.8, 3.0));
  cam.focal = uniform(gen, 0.75, 1.0);
  s.ambient = uniform(gen, 0.15, 0.3);
  const int lights = 1 + static_cast<int>(gen.below(2));
  double weight_sum = 0;
  for (int k = 0; k < lights; ++k) {
    SceneLight l;
    l.position.x = uniform(gen, -0.8, 0.8) * s.half_x;
    l.position.y = s.height - 0.1;
    l.position.z = uniform(gen, -0.8, 0.8) * s.half_z;
    l.intensity = uniform(gen, 0.4, 1.0);
    weight_sum += l.intensity;
    s.lights.push_back(l);
  }
  for (SceneLight& l : s.lights) l.intensity *= (1 - s.ambient) / weight_sum;  // shading <= 1

  const int count = spec.min_objects + static_cast<int>(gen.below(spec.max_objects - spec.min_objects + 1));
  constexpr double kGap = 0.02;  // metres between footprints of objects not placed in contact
  if (spec.classification) {  // object 0 where the camera looks, at least 1.5 m away
    SceneObject o = draw_object(gen, kSceneWoodBox + static_cast<int>(gen.below(kSceneObjectClasses)));
    const double radius = footprint_radius(o);
    o.centre.x = std::clamp(cam.target.x, -s.half_x + radius + kGap, s.half_x - radius - kGap);
    o.centre.z = std::min(cam.position.z - 1.5, std::max(-s.half_z + radius + kGap, cam.target.z));
    cam.target = o.centre;
    s.objects.push_back(o);
  }
  for (int i = 0; i < count; ++i) {
    const int label = kSceneWoodBox + static_cast<int>(gen.below(kSceneObjectClasses));
    for (int attempt = 0; attempt < 20; ++attempt) {
      SceneObject o = draw_object(gen, label);
      const double radius = footprint_radius(o);
      int partner = -1;  // the box this one is placed against (same yaw, coplanar faces)
      bool at_wall = false;
      if (gen.uniform() < spec.contact_probability) {
        const int previous = s.objects.empty() ? -1 : static_cast<int>(s.objects.size()) - 1;
        const bool boxes = o.shape == SceneShape::box && previous >= 0 &&
                           s.objects[static_cast<size_t>(previous)].shape == SceneShape::box;
        const double side = gen.uniform() < 0.5 ? -1.0 : 1.0;
        const double along = uniform(gen, -1, 1);
        if (boxes && gen.below(2) == 0) {
          const SceneObject& p = s.objects[static_cast<size_t>(previous)];
          o.yaw_cos = p.yaw_cos;
          o.yaw_sin = p.yaw_sin;
          // Side by side, +z faces in one plane: contact at one depth.
          const Vec offset = to_world(p, Vec{side * (p.half.x + o.half.x), 0, p.half.z - o.half.z});
          o.centre.x = p.centre.x + offset.x;
          o.centre.z = p.centre.z + offset.z;
          partner = previous;
        } else {  // against the back wall (z = -Z) or a side wall, edge-on
          const int wall = static_cast<int>(gen.below(3));
          o.yaw_cos = 1;
          o.yaw_sin = 0;
          const double extent_x = o.half.x;  // box half extent or radius
          const double extent_z = o.shape == SceneShape::box ? o.half.z : o.half.x;
          if (wall == 0) {
            o.centre.z = -s.half_z + extent_z;
            o.centre.x = along * (s.half_x - extent_x - kGap);
          } else {
            o.centre.x = side * (s.half_x - extent_x);
            o.centre.z = -s.half_z + extent_z + kGap + (along + 1) / 2 * std::max(0.0, cam.position.z - 1.5 + s.half_z);
          }
          at_wall = true;
        }
      } else {
        double x = 0, z = 0;
        const double u = uniform(gen, 0.1, 0.9), v = uniform(gen, 0.5, 0.95);
        if (!floor_point(s, u, v, &x, &z)) continue;
        o.centre.x = x;
        o.centre.z = z;
      }
      // Inside the room (objects at a wall touch it), clear of the camera and of the others.
      const double margin = at_wall ? -1e-9 : kGap;
      const double ex = o.shape == SceneShape::box && o.yaw_sin == 0 ? o.half.x : radius;
      const double ez = o.shape == SceneShape::box && o.yaw_sin == 0 ? o.half.z : radius;
      bool ok = std::abs(o.centre.x) + ex <= s.half_x - margin && std::abs(o.centre.z) + ez <= s.half_z - margin &&
                o.centre.z + radius < cam.position.z - 0.5;
      for (size_t k = 0; ok && k < s.objects.size(); ++k) {
        if (static_cast<int>(k) == partner) continue;
        const SceneObject& q = s.objects[k];
        const double dx = q.centre.x - o.centre.x, dz = q.centre.z - o.centre.z, reach = radius + footprint_radius(q) + kGap;
        if (dx * dx + dz * dz < reach * reach) ok = false;
      }
      if (!ok) continue;
      s.objects.push_back(o);
      break;
    }
  }
  if (spec.classification)  // nothing between the camera and the centre of object 0
    for (size_t k = s.objects.size(); k-- > 1;)
      if (intersect(s.objects[k], cam.position, s.objects[0].centre - cam.position, 1.0).t < 1.0)
        s.objects.erase(s.objects.begin() + static_cast<std::ptrdiff_t>(k));
  const int decals = static_cast<int>(gen.below(static_cast<uint64_t>(spec.max_decals) + 1));
  for (int i = 0; i < decals; ++i) {
    SceneDecal d;
    const bool on_floor = gen.below(2) == 0;
    const double w = uniform(gen, 0.15, 0.4), h = uniform(gen, 0.15, 0.4);
    double cu = 0, cv = 0;
    if (on_floor) {
      const double u = uniform(gen, 0.1, 0.9), v = uniform(gen, 0.5, 0.95);
      if (!floor_point(s, u, v, &cu, &cv)) cu = cv = 0;
      d.surface = 0;
    } else {
      cu = uniform(gen, -0.7, 0.7) * s.half_x;
      cv = uniform(gen, 0.6, 1.8);
      d.surface = 3;  // the back wall z = -Z
    }
    d.u0 = cu - w;
    d.u1 = cu + w;
    d.v0 = cv - h;
    d.v1 = cv + h;
    d.material = paint_material(gen);
    s.decals.push_back(d);
  }
  return s;
}

SceneImages render_scene(const Scene& s, int width, int height) {
  check_size(width, height);
  const int W = width, H = height;
  check_scene(s);
  const SceneCamera& cam = s.camera;
  const Vec f = normalised(cam.target - cam.position), r = normalised(cross(f, Vec{0, 1, 0})), up = cross(r, f);
  const double focal_px = cam.focal * W;

  SceneImages out;
  out.rgb = Image(W, H, 3, 8);
  out.depth = Image(W, H, 1, 16);
  out.normal = Image(W, H, 3, 8);
  out.shading = Image(W, H, 1, 8);
  out.albedo = Image(W, H, 3, 8);
  out.edges = Image(W, H, 1, 8);
  out.label = Image(W, H, 1, 8);
  out.instance = Image(W, H, 1, 16);
  const size_t n = static_cast<size_t>(W) * H;
  std::vector<Vec> points(n), normals(n);
  std::vector<Colour> albedos(n);
  std::vector<double> depths(n);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      const size_t i = static_cast<size_t>(y) * W + x;
      // Unit component along the optical axis: t is the z-buffer depth.
      const Vec dir = f + r * ((x + 0.5 - 0.5 * W) / focal_px) + up * ((0.5 * H - y - 0.5) / focal_px);
      const Hit hit = intersect_scene(s, cam.position, dir);
      const Vec p = cam.position + dir * hit.t;
      double shade = s.ambient;
      for (const SceneLight& l : s.lights) {
        const Vec to_light = l.position - p;
        const double cosine = dot(hit.normal, to_light);
        if (cosine <= 0) continue;
        if (occluded(s, p + hit.normal * 1e-6, to_light)) continue;
        shade += l.intensity * cosine / std::sqrt(dot(to_light, to_light));
      }
      const Colour a = surface_albedo(s, hit);
      points[i] = p;
      normals[i] = hit.normal;
      albedos[i] = a;
      depths[i] = hit.t;
      out.rgb.at(y, x, 0) = to8(a.r * shade);
      out.rgb.at(y, x, 1) = to8(a.g * shade);
      out.rgb.at(y, x, 2) = to8(a.b * shade);
      out.albedo.at(y, x, 0) = to8(a.r);
      out.albedo.at(y, x, 1) = to8(a.g);
      out.albedo.at(y, x, 2) = to8(a.b);
      out.shading.at(y, x) = to8(shade);
      out.depth.at(y, x) = static_cast<uint16_t>(std::clamp(hit.t * 1000 + 0.5, 1.0, 65535.0));
      const double camera_normal[3] = {dot(hit.normal, r), dot(hit.normal, up), -dot(hit.normal, f)};
      for (int c = 0; c < 3; ++c) out.normal.at(y, x, c) = to8((camera_normal[c] + 1) / 2);
      out.label.at(y, x) = static_cast<uint16_t>(label_of(s, hit.id));
      out.instance.at(y, x) = static_cast<uint16_t>(hit.id);
    }
  // Edges, from the geometry and the albedo of the 4-neighbours: a depth edge where a neighbour
  // lies on another surface (normals more than ~26 degrees apart, or the neighbour's point off
  // this pixel's tangent plane by more than 2% of the depth), a texture edge where the albedo
  // changes by more than 0.1 in a channel.
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      const size_t i = static_cast<size_t>(y) * W + x;
      bool depth_edge = false, texture_edge = false;
      const int nx[4] = {x - 1, x + 1, x, x}, ny[4] = {y, y, y - 1, y + 1};
      for (int k = 0; k < 4; ++k) {
        if (nx[k] < 0 || nx[k] >= W || ny[k] < 0 || ny[k] >= H) continue;
        const size_t j = static_cast<size_t>(ny[k]) * W + nx[k];
        if (dot(normals[i], normals[j]) < 0.9 || std::abs(dot(normals[i], points[j] - points[i])) > 0.02 * depths[i])
          depth_edge = true;
        const Colour &a = albedos[i], &b = albedos[j];
        if (std::max({std::abs(a.r - b.r), std::abs(a.g - b.g), std::abs(a.b - b.b)}) > 0.1) texture_edge = true;
      }
      out.edges.at(y, x) = depth_edge ? 255 : texture_edge ? 128 : 0;
    }
  return out;
}

SceneImages make_scene_images(const SceneSpec& spec, uint64_t seed, int64_t index) {
  const Scene scene = make_scene(spec, seed, index);
  SceneImages images = render_scene(scene, spec.width, spec.height);
  if (spec.classification) images.class_index = scene.objects[0].label - kSceneWoodBox;
  return images;
}

}  // namespace mmfuse::datasets
