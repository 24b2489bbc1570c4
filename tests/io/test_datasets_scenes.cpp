// The rendered scenes (datasets/scenes.h): bytes pinned for a seed and independent of threads,
// labels, depth and normals of hand-built scenes checked against geometry worked out here, and
// the modalities of random scenes aligned with each other.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <thread>
#include <vector>

#include "base/error.h"
#include "datasets/scenes.h"
#include "doctest/doctest.h"

using namespace mmfuse::datasets;

namespace {

uint64_t fnv1a(uint64_t h, const mmfuse::Image& image) {
  for (uint16_t v : image.pixels)
    for (int byte = 0; byte < 2; ++byte) {
      h ^= (v >> (8 * byte)) & 0xff;
      h *= 0x100000001b3ull;
    }
  return h;
}

uint64_t hash_of(const SceneImages& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int m = 0; m < kSceneModalities; ++m) h = fnv1a(h, s.modality(m));
  return fnv1a(fnv1a(h, s.label), s.instance);
}

// A plain room 10 m x 3 m x 10 m, the camera at `eye` looking at `target`, one light.
Scene plain_room(SceneVec eye, SceneVec target) {
  Scene s;
  s.half_x = s.half_z = 5;
  s.height = 3;
  s.floor.colour = {0.5, 0.5, 0.5};
  s.floor.period = 1000;  // plaster noise too slow to change the albedo between pixels
  s.wall.colour = {0.7, 0.7, 0.7};
  s.wall.period = 1000;
  s.ceiling.colour = {0.9, 0.9, 0.9};
  s.ambient = 0.2;
  s.camera.position = eye;
  s.camera.target = target;
  s.camera.focal = 1.0;
  return s;
}

// The world direction of pixel (x, y) for a camera looking along -z from a level eye (the
// documented camera model with forward (0, 0, -1), right (1, 0, 0), up (0, 1, 0)).
SceneVec ray(int x, int y, int size, double focal) {
  return {(x + 0.5 - size / 2.0) / (focal * size), (size / 2.0 - y - 0.5) / (focal * size), -1};
}

}  // namespace

TEST_CASE("scenes: the same bytes for a seed, whatever the order and the thread count") {
  SceneSpec spec;
  spec.width = spec.height = 48;
  std::vector<uint64_t> sequential;
  for (int i = 0; i < 4; ++i) sequential.push_back(hash_of(make_scene_images(spec, 1, i)));
  // Pinned: a change of these values changes every dataset written with `make-dataset scenes`.
  // Update them (and say so in the commit) only when the renderer's documented spec changes.
  const std::vector<uint64_t> pinned = {0xa04306e866e15636ull, 0x9ae8a85011a8bb29ull, 0x606492adaa1953ffull,
                                        0x474e5ce5b5002462ull};
  CHECK(sequential == pinned);
  std::vector<uint64_t> threaded(4);
  std::vector<std::thread> workers;
  for (int i = 3; i >= 0; --i)
    workers.emplace_back([&, i] { threaded[static_cast<size_t>(i)] = hash_of(make_scene_images(spec, 1, i)); });
  for (auto& w : workers) w.join();
  CHECK(threaded == sequential);
  CHECK(hash_of(make_scene_images(spec, 2, 0)) != sequential[0]);
  for (size_t i = 1; i < sequential.size(); ++i) CHECK(sequential[i] != sequential[0]);
  CHECK_THROWS_AS(make_scene(spec, 1, -1), mmfuse::Error);
  spec.width = 4;
  CHECK_THROWS_AS(make_scene(spec, 1, 0), mmfuse::Error);
}

TEST_CASE("scenes: a hand-built box and ball label, measure and orient the pixels they cover") {
  const int S = 96;
  const double eye_y = 1.2, eye_z = 4;
  Scene s = plain_room({0, eye_y, eye_z}, {0, eye_y, 0});
  SceneObject box;  // a 1 m cube on the floor, centred on the optical axis, front face at z = 0.5
  box.label = kSceneWoodBox;
  box.centre = {0, 0.5, 0};
  box.half = {0.5, 0.5, 0.5};
  box.material.kind = SceneMaterialKind::rubber;
  box.material.colour = {0.8, 0.2, 0.1};
  s.objects.push_back(box);
  SceneObject ball;  // a 0.3 m ball to the right, in front of the box
  ball.label = kSceneBall;
  ball.shape = SceneShape::sphere;
  ball.centre = {1.5, 0.3, 1.0};
  ball.half = {0.3, 0.3, 0.3};
  ball.material.kind = SceneMaterialKind::rubber;
  ball.material.colour = {0.1, 0.3, 0.9};
  s.objects.push_back(ball);
  s.lights.push_back({{0, 2.9, 0}, 0.8});  // straight above the box: it shadows the floor around it
  const SceneImages im = render_scene(s, S, S);

  int box_pixels = 0, ball_pixels = 0, floor_pixels = 0, shadowed = 0, lit = 0;
  for (int y = 0; y < S; ++y)
    for (int x = 0; x < S; ++x) {
      const SceneVec d = ray(x, y, S, 1.0);
      const int label = im.label.at(y, x);
      // The ray meets the box's front plane z = 0.5 at depth 3.5.
      const double fx = d.x * 3.5, fy = eye_y + d.y * 3.5;
      if (std::abs(fx) < 0.48 && fy > 0.02 && fy < 0.98) {
        ++box_pixels;
        REQUIRE(label == kSceneWoodBox);
        CHECK(std::abs(im.depth.at(y, x) - 3500) <= 1);
        CHECK(im.normal.at(y, x, 0) == 128);  // (0, 0, 1): facing the camera
        CHECK(im.normal.at(y, x, 1) == 128);
        CHECK(im.normal.at(y, x, 2) == 255);
        CHECK(im.albedo.at(y, x, 0) == 204);
        CHECK(im.albedo.at(y, x, 2) == 26);
      }
      if (std::abs(fx) > 0.52 && label == kSceneWoodBox)
        FAIL("box label outside the box at (" << x << ", " << y << ")");
      // The ball: rays passing within 0.28 m of its centre hit it (if the box does not hide it).
      const SceneVec c{ball.centre.x, ball.centre.y - eye_y, ball.centre.z - eye_z};
      const double dd = d.x * d.x + d.y * d.y + d.z * d.z, along = (c.x * d.x + c.y * d.y + c.z * d.z) / dd;
      const double miss2 = c.x * c.x + c.y * c.y + c.z * c.z - along * along * dd;
      if (miss2 < 0.28 * 0.28) {
        ++ball_pixels;
        CHECK(label == kSceneBall);
      }
      if (miss2 > 0.32 * 0.32 && label == kSceneBall) FAIL("ball label off the ball at (" << x << ", " << y << ")");
      // The floor in front of everything: depth from the ray's floor crossing.
      if (d.y < 0) {
        const double t = eye_y / -d.y, px = d.x * t, pz = eye_z - t;
        if (pz > 0.55 && std::abs(px - 1.5) > 0.6 && label == kSceneFloor) {
          ++floor_pixels;
          CHECK(std::abs(im.depth.at(y, x) - t * 1000) <= 1);
          CHECK(im.normal.at(y, x, 1) > 128);  // up, tilted towards the camera
          // The box's shadow from the light above it: |x|, |z| < 0.5 * 2.9 / 1.9 on the floor.
          const double reach = 0.5 * 2.9 / 1.9;
          if (std::abs(px) < reach - 0.03 && pz < reach - 0.03) {
            ++shadowed;
            CHECK(im.shading.at(y, x) == 51);  // ambient only: round(255 * 0.2)
          } else if (std::abs(px) > reach + 0.03 || pz > reach + 0.03) {
            ++lit;
            CHECK(im.shading.at(y, x) > 60);
          }
        }
      }
    }
  CHECK(box_pixels > 300);
  CHECK(ball_pixels > 20);
  CHECK(floor_pixels > 500);
  CHECK(shadowed > 10);
  CHECK(lit > 100);
  // The shadow's edge is in RGB and shading, not among the depth edges; the box's outline is.
  int shadow_edges = 0;
  for (int y = 1; y < S - 1; ++y)
    for (int x = 1; x < S - 1; ++x) {
      if (im.label.at(y, x) != kSceneFloor || im.label.at(y, x + 1) != kSceneFloor) continue;
      if (std::abs(im.shading.at(y, x) - im.shading.at(y, x + 1)) > 20) {
        ++shadow_edges;
        CHECK(im.edges.at(y, x) != 255);
        CHECK(std::abs(im.rgb.at(y, x, 0) - im.rgb.at(y, x + 1, 0)) > 10);
      }
    }
  CHECK(shadow_edges > 2);
  const int cx = S / 2;
  int outline = 0;
  for (int y = 0; y < S; ++y)
    outline += im.label.at(y, cx) == kSceneWoodBox && im.label.at(y - (y > 0), cx) != kSceneWoodBox;
  CHECK(outline == 1);
  // Hand-built scenes are checked before any ray is cast.
  Scene bad = s;
  bad.camera.target = bad.camera.position;
  CHECK_THROWS_WITH_AS(render_scene(bad, 16, 16), doctest::Contains("must not look straight up or down"),
                       mmfuse::Error);
  bad = s;
  bad.camera.position.z = 7;
  CHECK_THROWS_WITH_AS(render_scene(bad, 16, 16), doctest::Contains("is not inside the room"), mmfuse::Error);
  bad = s;
  bad.objects[1].material.period = 0;
  CHECK_THROWS_WITH_AS(render_scene(bad, 16, 16), doctest::Contains("ball material's period"), mmfuse::Error);
}

TEST_CASE("scenes: two coplanar boxes in contact: one depth surface, two labels, a texture edge") {
  const int S = 64;
  Scene s = plain_room({0, 1.0, 3}, {0, 1.0, 0});
  for (int k = 0; k < 2; ++k) {
    SceneObject box;
    box.label = k == 0 ? kSceneWoodBox : kSceneMetalBox;
    box.centre = {k == 0 ? -0.4 : 0.4, 0.8, 0};
    box.half = {0.4, 0.8, 0.3};
    box.material.kind = SceneMaterialKind::rubber;
    box.material.colour = k == 0 ? SceneColour{0.6, 0.4, 0.2} : SceneColour{0.6, 0.6, 0.65};
    s.objects.push_back(box);
  }
  s.lights.push_back({{0, 2.9, 2}, 0.7});
  const SceneImages im = render_scene(s, S, S);
  const int y = S / 2;
  int boundaries = 0;
  for (int x = 1; x < S; ++x) {
    const int a = im.label.at(y, x - 1), b = im.label.at(y, x);
    if (a == kSceneWoodBox && b == kSceneMetalBox) {
      ++boundaries;
      CHECK(im.depth.at(y, x - 1) == im.depth.at(y, x));  // depth cannot see the contact
      CHECK(im.edges.at(y, x) == 128);                    // a texture edge, not a depth edge
    }
  }
  CHECK(boundaries == 1);
}

TEST_CASE("scenes: random scenes' modalities agree with each other") {
  SceneSpec spec;
  spec.width = spec.height = 80;
  std::vector<int> class_pixels(kSceneClasses, 0);
  int64_t label_boundaries = 0, label_boundaries_on_edges = 0, smooth = 0, smooth_agree = 0;
  for (int index = 0; index < 6; ++index) {
    const Scene scene = make_scene(spec, 3, index);
    const SceneImages im = render_scene(scene, spec.width, spec.height);
    const int S = spec.width;
    const double focal_px = scene.camera.focal * S;
    auto point = [&](int x, int y) {  // the camera-frame point of a pixel, from its depth
      const double z = im.depth.at(y, x) / 1000.0;
      return SceneVec{z * (x + 0.5 - S / 2.0) / focal_px, z * (S / 2.0 - y - 0.5) / focal_px, -z};
    };
    for (int y = 0; y < S; ++y)
      for (int x = 0; x < S; ++x) {
        ++class_pixels[im.label.at(y, x)];
        for (int c = 0; c < 3; ++c)  // rgb = albedo x shading (each rounded to 8 bits)
          REQUIRE(std::abs(im.rgb.at(y, x, c) - im.albedo.at(y, x, c) * im.shading.at(y, x) / 255.0) <= 2.0);
        if (x + 1 < S) {
          const double z0 = im.depth.at(y, x), z1 = im.depth.at(y, x + 1);
          // A depth discontinuity is always a change of surface.
          if (std::abs(z0 - z1) > 0.15 * std::min(z0, z1)) CHECK(im.instance.at(y, x) != im.instance.at(y, x + 1));
          if (im.label.at(y, x) != im.label.at(y, x + 1)) {
            ++label_boundaries;
            label_boundaries_on_edges += im.edges.at(y, x) == 255 || im.edges.at(y, x + 1) == 255;
          }
        }
        // Normals against the depth map's own gradient, inside smooth patches of one surface.
        if (x < 1 || y < 1 || x + 1 >= S || y + 1 >= S) continue;
        bool patch = true;
        for (int dy = -1; dy <= 1; ++dy)
          for (int dx = -1; dx <= 1; ++dx)
            patch &= im.instance.at(y + dy, x + dx) == im.instance.at(y, x) && im.edges.at(y + dy, x + dx) != 255;
        if (!patch) continue;
        const SceneVec r = point(x + 1, y), l = point(x - 1, y), u = point(x, y - 1), d = point(x, y + 1);
        const SceneVec a{r.x - l.x, r.y - l.y, r.z - l.z}, b{u.x - d.x, u.y - d.y, u.z - d.z};
        SceneVec n{a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x};
        const double len = std::sqrt(n.x * n.x + n.y * n.y + n.z * n.z);
        const double dot = (n.x * (im.normal.at(y, x, 0) / 127.5 - 1) + n.y * (im.normal.at(y, x, 1) / 127.5 - 1) +
                            n.z * (im.normal.at(y, x, 2) / 127.5 - 1)) /
                           len;
        ++smooth;
        smooth_agree += dot > 0.95;
      }
  }
  for (int c = 0; c < kSceneClasses; ++c) {
    INFO("class " << scene_class_name(c));
    if (c != 0) CHECK(class_pixels[static_cast<size_t>(c)] > 0);  // the ceiling is often out of view
  }
  CHECK(label_boundaries > 200);
  CHECK(label_boundaries_on_edges >= 0.95 * label_boundaries);
  CHECK(smooth > 10000);
  CHECK(smooth_agree >= 0.97 * smooth);
}

TEST_CASE("scenes: the classification variant looks at its object: the centre pixels carry its class") {
  SceneSpec spec;
  spec.width = spec.height = 48;
  spec.classification = true;
  std::vector<int> seen(kSceneObjectClasses, 0);
  for (int index = 0; index < 40; ++index) {
    const SceneImages im = make_scene_images(spec, 4, index);
    REQUIRE(im.class_index >= 0);
    REQUIRE(im.class_index < kSceneObjectClasses);
    ++seen[static_cast<size_t>(im.class_index)];
    // The optical axis passes through pixel corner (24, 24): one of the four pixels around it.
    bool centre = false;
    for (int y : {23, 24})
      for (int x : {23, 24}) centre |= im.label.at(y, x) == kSceneWoodBox + im.class_index;
    CHECK(centre);
  }
  for (int c = 0; c < kSceneObjectClasses; ++c) CHECK(seen[static_cast<size_t>(c)] > 2);
  spec.classification = false;
  CHECK(make_scene_images(spec, 4, 0).class_index == -1);
}
