#include "core/adversarial.h"

#include <algorithm>
#include <cmath>

#include "base/format.h"
#include "core/ops.h"
#include "core/png.h"

namespace mmfuse {

Tensor gan_loss(const Tensor& d_out, bool real, proto::AdversarialParameter::GanMode mode) {
  if (mode == proto::AdversarialParameter::LSGAN)
    return mse_loss(d_out, Tensor::full(d_out.shape(), real ? 1.0 : 0.0, d_out.dtype(), d_out.device()));
  // log(1 + exp(-|x|)) + max(x, 0) - x·y: finite for every x.
  Tensor soft = add(log(affine(exp(affine(abs(d_out), -1, 0)), 1, 1)), relu(d_out));
  return mean(real ? sub(soft, d_out) : soft);
}

namespace {

class AdversarialGame : public Game {
 public:
  AdversarialGame(const proto::AdversarialParameter& p, std::vector<Player>& players) : p_(p) {
    auto find = [&](const std::string& name, const char* role) {
      for (size_t k = 0; k < players.size(); ++k)
        if (players[k].name == name) return k;
      throw Error(std::string(role) + " '" + name + "' is not a player");
    };
    g_ = find(p.generator(), "generator");
    d_ = find(p.discriminator(), "discriminator");
    if (g_ == d_) throw Error("the generator and the discriminator are one player ('" + p.generator() + "')");
    if (players.size() != 2) throw Error("needs two players, got " + std::to_string(players.size()));
    if (p.fake_size() == 0) throw Error("names no `fake` blob of the generator (the outputs D judges)");
    if (p.real().empty()) throw Error("names no `real` blob of the generator (the ground truth)");
    if (p.d_steps() < 1) throw Error("d_steps must be >= 1, got " + std::to_string(p.d_steps()));
    if (!(p.gan_weight() >= 0)) throw Error("gan_weight must be >= 0, got " + format_number("%g", p.gan_weight()));
    const Net& g = *players[g_].net;
    const Net& d = *players[d_].net;
    auto g_shape = [&](const std::string& blob, const char* field) {
      auto it = g.blob_shapes().find(blob);
      if (it == g.blob_shapes().end())
        throw Error(std::string(field) + " '" + blob + "' is not a blob of the generator's TRAIN net");
      return it->second;
    };
    const Shape real = g_shape(p.real(), "real");
    for (const auto& f : p.fake())
      if (g_shape(f, "fake") != real)
        throw Error("fake '" + f + "' is " + shape_str(g_shape(f, "fake")) + ", the real '" + p.real() + "' is " +
                    shape_str(real));
    std::vector<std::string> want{p.d_image()};
    if (!p.condition().empty()) {
      Shape c = g_shape(p.condition(), "condition");
      d.check_input(p.d_condition(), c);
      want.push_back(p.d_condition());
    }
    d.check_input(p.d_image(), real);
    if (d.inputs().size() != want.size())
      throw Error("the discriminator has " + std::to_string(d.inputs().size()) + " inputs; it is fed " +
                  std::to_string(want.size()) + " (d_image" + (p.condition().empty() ? "" : ", d_condition") + ")");
    std::vector<std::string> outs;
    for (const auto& o : d.output_names())
      if (std::none_of(d.loss_weights().begin(), d.loss_weights().end(), [&](const auto& l) { return l.first == o; }))
        outs.push_back(o);
    if (outs.size() != 1)
      throw Error("the discriminator must have one output (its patch logits), it has " + std::to_string(outs.size()));
    d_out_ = outs[0];
    if (!d.loss_weights().empty()) throw Error("the discriminator has loss layers; its loss is the solver's gan_mode");
    if (!p.grid().empty()) {
      if (players[g_].tests.empty()) throw Error("grid needs the generator's TEST net (its player's test_iter > 0)");
      for (const auto& b : p.grid())
        if (!players[g_].tests[0].net->blob_shapes().count(b))
          throw Error("grid blob '" + b + "' is not a blob of the generator's TEST net");
      if (!(p.grid_max() > p.grid_min())) throw Error("grid_max must exceed grid_min");
    }
  }

  std::string describe() const override {
    return std::string("adversarial (") + (p_.gan_mode() == proto::AdversarialParameter::LSGAN ? "LSGAN" : "BCE") +
           ", gan_weight " + format_number("%g", p_.gan_weight()) + ", " + std::to_string(p_.fake_size()) +
           " fake(s) judged, d_steps " + std::to_string(p_.d_steps()) + ")";
  }

  GameStep forward_backward(std::vector<Player>& players, int64_t iter, bool apply, bool show) override {
    Player &g = players[g_], &d = players[d_];
    GameStep r;
    auto blobs = g.net->forward({}, iter);
    Tensor g_loss = g.net->loss();
    Tensor cond = p_.condition().empty() ? Tensor() : blobs.at(p_.condition()).detach();
    Tensor real = blobs.at(p_.real()).detach();
    auto judge = [&](const Tensor& image) {
      std::map<std::string, Tensor> in{{p_.d_image(), image}};
      if (cond.defined()) in[p_.d_condition()] = cond;
      return d.net->forward(in, iter).at(d_out_);
    };
    const double fakes = static_cast<double>(p_.fake_size());
    double d_real = 0, d_fake = 0;
    for (int s = 0; s < p_.d_steps(); ++s) {
      Tensor l_real = gan_loss(judge(real), true, p_.gan_mode());
      Tensor l_fake;
      for (const auto& f : p_.fake()) {
        Tensor l = gan_loss(judge(blobs.at(f).detach()), false, p_.gan_mode());
        l_fake = l_fake.defined() ? add(l_fake, l) : l;
      }
      l_fake = affine(l_fake, 1 / fakes, 0);
      Tensor l_d = affine(add(l_real, l_fake), 0.5, 0);
      d_real = l_real.item(), d_fake = l_fake.item();
      if (!std::isfinite(l_d.item())) {
        r.bad = std::string("the discriminator's loss is ") + non_finite(l_d.item());
        return r;
      }
      l_d.backward();
      if (!apply) {  // the check: D's gradients of this batch are enough (G's loss below adds to them)
        r.bad = bad_gradient(*d.optimizer);
        if (!r.bad.empty()) return r;
        d.optimizer->zero_grad();
        break;
      }
      double norm = d.optimizer->step(d.lr(iter));
      d.optimizer->zero_grad();
      if (!std::isfinite(norm)) {
        r.bad = std::string("the discriminator's gradients are ") + non_finite(norm) + " (their norm)";
        return r;
      }
    }
    Tensor l_gan;
    for (const auto& f : p_.fake()) {
      Tensor l = gan_loss(judge(blobs.at(f)), true, p_.gan_mode());
      l_gan = l_gan.defined() ? add(l_gan, l) : l;
    }
    l_gan = affine(l_gan, 1 / fakes, 0);
    Tensor l_g = add(affine(l_gan, p_.gan_weight(), 0), g_loss.to(l_gan.dtype()));
    const double lg = l_g.item();
    if (!std::isfinite(lg)) {
      r.bad = std::string("the generator's loss is ") + non_finite(lg);
      return r;
    }
    l_g.backward();
    d.optimizer->zero_grad();  // G's loss reaches D's parameters: not D's update
    r.loss = lg;
    if (show) {
      r.outputs = {{"G_total", lg}, {"G_gan", l_gan.item()}, {"D_real", d_real}, {"D_fake", d_fake}};
      for (const auto& l : g.net->loss_weights()) r.outputs.emplace_back(l.first, mean(blobs.at(l.first)).item());
    }
    return r;
  }

  void update(std::vector<Player>& players, int64_t iter, GameStep& step) override {
    Player& g = players[g_];
    step.grad_norm = g.optimizer->step(g.lr(iter));
    if (!std::isfinite(step.grad_norm))
      step.bad = std::string("the generator's gradients are ") + non_finite(step.grad_norm) + " (their norm)";
  }

  void after_test(std::vector<Player>& players, const std::string& prefix) override {
    if (p_.grid().empty()) return;
    const Net& net = *players[g_].tests[0].net;
    std::vector<Tensor> cols;
    for (const auto& b : p_.grid()) cols.push_back(net.blob(b).to(Device::cpu()).to(DType::f64));
    const int64_t rows = std::min<int64_t>(8, cols[0].shape()[0]), gap = 2;
    int64_t h = 0, w = 0;
    for (const Tensor& c : cols) h = std::max(h, c.shape()[2]), w = std::max(w, c.shape()[3]);
    const int64_t ncols = static_cast<int64_t>(cols.size());
    Image img(static_cast<int>(ncols * (w + gap) - gap), static_cast<int>(rows * (h + gap) - gap), 3);
    std::fill(img.pixels.begin(), img.pixels.end(), uint16_t{255});
    const double lo = p_.grid_min(), scale = 255.0 / (p_.grid_max() - p_.grid_min());
    for (int64_t j = 0; j < ncols; ++j) {
      const Shape& s = cols[static_cast<size_t>(j)].shape();
      std::vector<double> v = cols[static_cast<size_t>(j)].to_vector<double>();
      const int64_t c = s[1], hh = s[2], ww = s[3];
      for (int64_t i = 0; i < std::min(rows, s[0]); ++i)
        for (int64_t y = 0; y < hh; ++y)
          for (int64_t x = 0; x < ww; ++x)
            for (int64_t k = 0; k < 3; ++k) {  // one channel: grey; more: the first three
              double val = v[static_cast<size_t>(((i * c + std::min(k, c - 1)) * hh + y) * ww + x)];
              double px = std::clamp((val - lo) * scale, 0.0, 255.0);
              img.at(static_cast<int>(i * (h + gap) + y), static_cast<int>(j * (w + gap) + x), static_cast<int>(k)) =
                  static_cast<uint16_t>(std::lround(px));
            }
    }
    write_png(prefix + "_grid.png", img);
  }

 private:
  proto::AdversarialParameter p_;
  size_t g_ = 0, d_ = 1;
  std::string d_out_;
};

}  // namespace

std::unique_ptr<Game> make_adversarial_game(const proto::AdversarialParameter& param, std::vector<Player>& players) {
  return std::make_unique<AdversarialGame>(param, players);
}

}  // namespace mmfuse
