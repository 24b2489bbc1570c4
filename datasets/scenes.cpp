// The scene renderer: one ray per pixel against the room and the objects' analytic surfaces,
// procedural materials, point lights with cast shadows, and the modalities written per pixel.
#include "datasets/scenes.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "datasets/scene_internal.h"

namespace mmfuse::datasets {

const char* const kSceneModalityNames[kSceneModalities] = {"rgb", "depth", "normal", "shading", "albedo", "edges"};

int scene_modality_index(const std::string& name) {
  for (int m = 0; m < kSceneModalities; ++m)
    if (name == kSceneModalityNames[m]) return m;
  return -1;
}

const char* scene_class_name(int label) {
  static const char* const names[kSceneClasses] = {"ceiling",   "floor",         "wall", "wood box",
                                                   "metal box", "wood cylinder", "ball", "slab"};
  return label >= 0 && label < kSceneClasses ? names[label] : "?";
}

const Image& SceneImages::modality(int m) const {
  const Image* images[kSceneModalities] = {&rgb, &depth, &normal, &shading, &albedo, &edges};
  MMF_CHECK(m >= 0 && m < kSceneModalities, Error, "scenes: modality index ", m, " out of range [0, ", kSceneModalities,
            ")");
  return *images[m];
}

using namespace scene_internal;

Hit scene_internal::intersect(const SceneObject& o, Vec origin, Vec dir, double t_max) {
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

void scene_internal::check_scene_size(int width, int height) {
  MMF_CHECK(width >= 8 && height >= 8 && width <= 4096 && height <= 4096, Error, "scenes: image size ", height, "x",
            width, " out of range [8, 4096]");
}

namespace {

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
      const double grain =
          triangle_wave((p.x + 3 * lattice(j, 1, 1)) / (0.6 * m.period) + 0.5 * value_noise(Vec{p.x * 4, 0, p.z * 40}));
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
    MMF_CHECK(o.half.x > 0 && o.half.y > 0 && (o.shape != SceneShape::box || o.half.z > 0), Error, "scenes: a ",
              scene_class_name(o.label), " object needs positive extents, got (", o.half.x, ", ", o.half.y, ", ",
              o.half.z, ")");
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
}  // namespace

SceneImages render_scene(const Scene& s, int width, int height) {
  check_scene_size(width, height);
  const int W = width, H = height;
  check_scene(s);
  const SceneCamera& cam = s.camera;
  const CameraFrame frame = camera_frame(cam);
  const Vec f = frame.forward, r = frame.right, up = frame.up;
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
