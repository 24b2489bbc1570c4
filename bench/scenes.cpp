// Rendering speed of the scene generator (datasets/scenes.h): images per second on one core
// (one thread, every modality rendered) at sizes 64, 128 and 256, and the same made by the
// SceneData layer with 2 worker threads (rgb + depth + label tops, normalised).
//   bench_scenes [images=200]
#include "datasets/scenes.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/layer.h"
#include "core/prototxt.h"

using namespace mmfuse;

int main(int argc, char** argv) {
  const int images = argc > 1 ? std::atoi(argv[1]) : 200;
  std::printf("scene rendering, one thread (images/s per core):\n");
  for (int size : {64, 128, 256}) {
    datasets::SceneSpec spec;
    spec.width = spec.height = size;
    const int count = std::max(1, images * 64 * 64 / (size * size));
    uint64_t checksum = 0;
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < count; ++i) checksum += datasets::make_scene_images(spec, 1, i).rgb.pixels[0];
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("  %3dx%-3d  %8.1f images/s  (%d images, checksum %llu)\n", size, size, count / seconds, count,
                static_cast<unsigned long long>(checksum));
  }
  proto::LayerParameter lp;
  parse_text(
      "name: 'd' type: 'SceneData' top: 'rgb' top: 'depth' top: 'label' "
      "scene_param { batch_size: 8 size: 64 threads: 2 }",
      "<bench>", lp);
  auto layer = create_layer(lp);
  Generator gen(1);
  LayerContext lctx{gen};
  layer->setup({}, lctx);
  ForwardContext ctx;
  layer->forward({}, ctx);  // warm-up: starts the workers
  const int batches = std::max(1, images / 8);
  auto start = std::chrono::steady_clock::now();
  for (int b = 1; b <= batches; ++b) {
    ctx.iteration = b;
    layer->forward({}, ctx);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("SceneData 64x64, 2 worker threads: %.1f samples/s\n", batches * 8 / seconds);
  return 0;
}
