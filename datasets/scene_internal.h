// Internals shared by the scene renderer (scenes.cpp) and the scene generator
// (scene_generator.cpp): vector arithmetic, the camera's frame, object frames and the ray-object
// intersection. Not part of the datasets/ interface; both files are compiled without
// floating-point contraction (CMakeLists.txt) and use only +, -, *, / and sqrt.
#pragma once
#include <cmath>
#include <limits>

#include "datasets/scenes.h"

namespace mmfuse::datasets::scene_internal {

using Vec = SceneVec;
using Colour = SceneColour;

inline Vec operator+(Vec a, Vec b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
inline Vec operator-(Vec a, Vec b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
inline Vec operator*(Vec a, double s) { return {a.x * s, a.y * s, a.z * s}; }
inline double dot(Vec a, Vec b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
inline Vec cross(Vec a, Vec b) { return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x}; }
inline Vec normalised(Vec a) { return a * (1.0 / std::sqrt(dot(a, a))); }
inline Colour operator*(Colour c, double s) { return {c.r * s, c.g * s, c.b * s}; }
inline Colour mix(Colour a, Colour b, double t) {
  return {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t};
}

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kEpsilon = 1e-7;  // metres: hits nearer than this along a ray are the ray's own surface

struct Hit {
  double t = kInf;
  Vec normal;  // world, unit, facing the ray
  Vec local;   // texture point in the surface's frame
  int id = 0;  // SceneImages::instance
};
// World -> object frame (rotation by -yaw about y) and back.
inline Vec to_local(const SceneObject& o, Vec v) {
  return {o.yaw_cos * v.x - o.yaw_sin * v.z, v.y, o.yaw_sin * v.x + o.yaw_cos * v.z};
}
inline Vec to_world(const SceneObject& o, Vec v) {
  return {o.yaw_cos * v.x + o.yaw_sin * v.z, v.y, -o.yaw_sin * v.x + o.yaw_cos * v.z};
}

// The nearest intersection of origin + t dir with object o at t in (kEpsilon, t_max); t = kInf if none.
Hit intersect(const SceneObject& o, Vec origin, Vec dir, double t_max);

// The camera's unit axes in the world: forward (towards the target), right, up.
struct CameraFrame {
  Vec forward, right, up;
};
inline CameraFrame camera_frame(const SceneCamera& c) {
  const Vec f = normalised(c.target - c.position), r = normalised(cross(f, Vec{0, 1, 0}));
  return {f, r, cross(r, f)};
}

// Error for image sizes outside [8, 4096].
void check_scene_size(int width, int height);

}  // namespace mmfuse::datasets::scene_internal
