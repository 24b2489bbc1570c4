// The conditional GAN schedule of pix2pix (Isola et al. 2017) and the AsymFusion/CEN
// translation code, as a Game (core/game.h) over two players, a generator G and a
// discriminator D (`adversarial { }` in the solver prototxt, docs/translation.md).
//
// Iteration t: G forwards batch t (its data layer, its loss layers: the weighted L1 of each
// branch and of the ensemble). D takes d_steps updates on
//   L_D = ½ [ gan(D(c, real), 1) + mean_f gan(D(c, stop_gradient(f)), 0) ]
// over the fakes f (the blobs `fake`: each branch's output and the ensemble's), c the condition
// blob; then G one update on L_G = G's net loss + gan_weight · mean_f gan(D(c, f), 1) (D's
// gradients from it are dropped). gan is LSGAN's least squares (default) or BCE on D's logits.
// D's steps are the game's first phase; G's update, its second.
#pragma once
#include <memory>
#include <vector>

#include "core/game.h"

namespace mmfuse {

// The GAN loss of D's output map against the target 1 (real) or 0 (fake), the mean over its
// elements: LSGAN (D - target)²; BCE max(x, 0) - x·target + log(1 + exp(-|x|)) on the logits x
// (torch's binary_cross_entropy_with_logits).
Tensor gan_loss(const Tensor& d_out, bool real, proto::AdversarialParameter::GanMode mode);

// Checks the players and blobs `param` names (throws Error naming what is missing or
// mis-shaped) and returns the game.
std::unique_ptr<Game> make_adversarial_game(const proto::AdversarialParameter& param, std::vector<Player>& players);

}  // namespace mmfuse
