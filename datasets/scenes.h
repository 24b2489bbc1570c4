// Rendered multimodal scenes: a deterministic procedural ray caster of indoor-like rooms (floor,
// walls, a ceiling) holding boxes, cylinders, balls and slabs of a few materials, lit by one or
// two point lights with cast shadows. Every pixel gets the Taskonomy-style modalities, aligned:
// RGB (albedo x shading), metric depth, surface normals, shading, albedo (texture), edges and
// semantic labels. A scene is a plain description (`Scene`) that tests can also build by hand;
// make_scene draws one from (spec, seed, index) and render_scene casts its rays.
//
// Determinism: a sample is a pure function of (spec, seed, index), and the renderer uses only
// +, -, *, / and sqrt (correctly rounded in IEEE 754) -- no libm transcendental function, whose
// last bits differ between C libraries -- and is compiled without floating-point contraction
// (CMakeLists.txt), so the same seed gives the same bytes on every machine and thread count.
// Specified in docs/datasets.md ("Rendered scenes"); keep the two in step.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/image.h"

namespace mmfuse::datasets {

// Semantic classes. Categories 3-7 are object categories: 3 and 4 share a shape (box) and differ
// in material; 3 and 5 share a material (wood) and differ in shape; 7 (slab) is almost flat and
// is painted like the floor and wall decals, which are labelled floor / wall.
enum SceneClass : int {
  kSceneCeiling = 0,  // "background": the ceiling, the only surface that is neither floor nor wall
  kSceneFloor = 1,
  kSceneWall = 2,
  kSceneWoodBox = 3,
  kSceneMetalBox = 4,
  kSceneWoodCylinder = 5,
  kSceneBall = 6,
  kSceneSlab = 7,
};
constexpr int kSceneClasses = 8;
// The classification variant's classes: the object categories, class = label - kSceneWoodBox.
constexpr int kSceneObjectClasses = 5;
const char* scene_class_name(int label);

// The modalities in their canonical order (the folders `make-dataset scenes` writes).
constexpr int kSceneModalities = 6;
extern const char* const kSceneModalityNames[kSceneModalities];  // rgb depth normal shading albedo edges
constexpr int kSceneModalityChannels[kSceneModalities] = {3, 1, 3, 1, 3, 1};
// Index of a modality name in kSceneModalityNames, -1 when unknown.
int scene_modality_index(const std::string& name);

struct SceneVec {
  double x = 0, y = 0, z = 0;
};
struct SceneColour {
  double r = 0, g = 0, b = 0;  // linear, [0, 1]
};

enum class SceneMaterialKind { wood, metal, rubber, paint, plaster, planks, tiles };
// A procedural material: a solid texture of the surface point in the object's own frame (metres).
struct SceneMaterial {
  SceneMaterialKind kind = SceneMaterialKind::plaster;
  SceneColour colour, colour2;  // base and second colour (grain, checks, tiles)
  double period = 0.1;          // ring spacing / check size / plank width / noise scale (metres)
  SceneVec offset;              // pattern origin in the object's frame
};

enum class SceneShape { box, sphere, cylinder };
struct SceneObject {
  int label = kSceneWoodBox;
  SceneShape shape = SceneShape::box;
  SceneVec centre;  // world coordinates (metres; y is up, the floor is y = 0)
  // Box: half extents in the object's frame; sphere: x = radius; cylinder: x = radius, y = half height.
  SceneVec half;
  double yaw_cos = 1, yaw_sin = 0;  // rotation about the vertical axis through the centre
  SceneMaterial material;
};

// A painted rectangle on the floor or a wall: changes the albedo, not the geometry or the label.
struct SceneDecal {
  int surface = 0;                        // 0 floor, 1..4 walls x = -X, x = +X, z = -Z, z = +Z
  double u0 = 0, u1 = 0, v0 = 0, v1 = 0;  // floor: x and z; walls x = +-X: z and y; walls z = +-Z: x and y
  SceneMaterial material;
};

struct SceneLight {
  SceneVec position;
  double intensity = 0.5;  // radiance scale of the Lambertian term
};

// A pinhole camera at `position` looking at `target`, world up +y. focal is the focal length in
// units of the image width: a pixel (x, y) of a W x H image looks along the camera-frame direction
// ((x + 0.5 - W/2) / (focal W), (H/2 - y - 0.5) / (focal W), -1) (x right, y up, z backwards).
struct SceneCamera {
  SceneVec position{0, 1.5, 2}, target{0, 0.5, 0};
  double focal = 0.9;  // about 58 degrees of horizontal field of view
};

// The room spans x in [-half_x, half_x], y in [0, height], z in [-half_z, half_z].
struct Scene {
  double half_x = 3, half_z = 3, height = 2.7;
  SceneMaterial floor, wall, ceiling;
  std::vector<SceneObject> objects;
  std::vector<SceneDecal> decals;
  std::vector<SceneLight> lights;
  double ambient = 0.25;  // shading = ambient + sum of lights' intensity * max(0, n.l) * visible; <= 1
  SceneCamera camera;
};

struct SceneSpec {
  int width = 64, height = 64;
  int min_objects = 4, max_objects = 7;
  int max_decals = 2;                 // painted rectangles on the floor and walls, 0..N
  double contact_probability = 0.35;  // chance that an object is placed against a wall or a box
  // The classification variant: object 0 stands where the camera looks (at least 1.5 m away),
  // objects hiding its centre are removed, and its category is the sample's class.
  bool classification = false;
};

// The rendered modalities, all H x W and aligned pixel for pixel.
struct SceneImages {
  Image rgb;       // 3 x 8-bit: round(255 * min(1, albedo * shading))
  Image depth;     // 1 x 16-bit: millimetres along the optical axis (z-buffer), >= 1
  Image normal;    // 3 x 8-bit: camera-frame unit normal (x right, y up, z towards the camera), round(127.5 (n + 1))
  Image shading;   // 1 x 8-bit: round(255 * shading), lighting only (ambient + direct, with shadows)
  Image albedo;    // 3 x 8-bit: round(255 * material colour)
  Image edges;     // 1 x 8-bit: 255 depth edge (occlusion or crease), 128 texture edge only, 0 none
  Image label;     // 1 x 8-bit: SceneClass
  Image instance;  // 1 x 16-bit: surface id (1 floor, 2-5 walls, 6 ceiling, 10 + i object i); not written to disk
  int class_index = -1;  // classification variant: object 0's category, 0..kSceneObjectClasses-1
  // The modality of index m in kSceneModalityNames.
  const Image& modality(int m) const;
};

// The scene of sample `index` of `seed`: a pure function of its arguments.
Scene make_scene(const SceneSpec& spec, uint64_t seed, int64_t index);
// Casts one ray per pixel centre. Throws Error for sizes outside [8, 4096].
SceneImages render_scene(const Scene& scene, int width, int height);
// render_scene(make_scene(spec, seed, index), spec.width, spec.height).
SceneImages make_scene_images(const SceneSpec& spec, uint64_t seed, int64_t index);

}  // namespace mmfuse::datasets
