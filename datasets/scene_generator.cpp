// The scene generator: a random room, camera, lights, objects and decals drawn from
// (spec, seed, index), with the distributions docs/datasets.md ("Rendered scenes") gives.
#include <algorithm>
#include <cmath>
#include <cstddef>

#include "base/error.h"
#include "core/random.h"
#include "datasets/data_layer.h"
#include "datasets/scene_internal.h"
#include "datasets/scenes.h"

namespace mmfuse::datasets {

using namespace scene_internal;

namespace {

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
  const CameraFrame frame = camera_frame(c);
  const Vec dir =
      frame.forward + frame.right * ((u - 0.5) / c.focal) + frame.up * ((0.5 - v) / c.focal);  // square image
  if (dir.y >= 0) return false;
  const double t = -c.position.y / dir.y;
  *x = c.position.x + t * dir.x;
  *z = c.position.z + t * dir.z;
  return true;
}
}  // namespace

Scene make_scene(const SceneSpec& spec, uint64_t seed, int64_t index) {
  check_scene_size(spec.width, spec.height);
  MMF_CHECK(spec.min_objects >= 0 && spec.max_objects >= spec.min_objects && spec.max_objects <= 64, Error,
            "scenes: need 0 <= min_objects <= max_objects <= 64, got ", spec.min_objects, " and ", spec.max_objects);
  MMF_CHECK(spec.max_decals >= 0 && spec.contact_probability >= 0 && spec.contact_probability <= 1, Error,
            "scenes: need max_decals >= 0 and contact_probability in [0, 1]");
  MMF_CHECK(index >= 0 && index < (int64_t(1) << 31), Error, "scenes: sample index ", index, " out of range [0, 2^31)");
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
  if (spec.classification) {     // object 0 where the camera looks, at least 1.5 m away
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
        const double dx = q.centre.x - o.centre.x, dz = q.centre.z - o.centre.z,
                     reach = radius + footprint_radius(q) + kGap;
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
}  // namespace mmfuse::datasets
