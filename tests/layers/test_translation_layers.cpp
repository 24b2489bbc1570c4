// Translation layers: InstanceNorm (against torch.nn.functional.instance_norm's values, per
// modality; running statistics; gradients for every option; setup errors) and ImageMetric
// (L1, RMSE, PSNR, SSIM against hand-computed values).
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/net.h"
#include "core/prototxt.h"
#include "tests/gradcheck.h"

using namespace mmfuse;
using mmfuse::testing::check_close;
using mmfuse::testing::random_input;

namespace {

// A float64 net of one Input layer (tops `inputs` with `shape`) and `layers`.
std::unique_ptr<Net> net_on(const std::vector<std::string>& inputs, const Shape& shape, const std::string& layers,
                            proto::Phase phase = proto::TRAIN, const Net* share_with = nullptr) {
  std::string text = "layer { name: 'in' type: 'Input'";
  for (const auto& n : inputs) text += " top: '" + n + "'";
  text += " input_param { shape {";
  for (int64_t d : shape) text += " dim: " + std::to_string(d);
  text += " } } }\n" + layers;
  return std::make_unique<Net>(read_net_text(text, "translation.prototxt"), phase, Device::cpu(), 5, share_with,
                               DType::f64);
}

std::string setup_error(const Shape& shape, const std::string& layers) {
  try {
    net_on({"x"}, shape, layers);
  } catch (const ParseError& e) {
    return e.what();
  }
  return "(no error)";
}

Tensor param_of(const Net& net, const std::string& name) {
  for (const Param& p : net.params())
    if (p.name == name) return p.value;
  FAIL("no parameter ", name);
  return Tensor();
}

// x[i] = sin(0.37 i + 0.1) (1 + i mod 5), the input of the torch reference below.
Tensor reference_input(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<double> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(std::sin(0.37 * static_cast<double>(i) + 0.1) * (1 + i % 5));
  return Tensor::from_vector(v, shape, DType::f64);
}

}  // namespace

TEST_CASE("InstanceNorm: torch's instance_norm per modality, running statistics, eval") {
  // torch 1.13: for m in 0, 1: F.instance_norm(x[2m:2m+2], rm[m], rv[m], gamma[m], beta[m],
  // use_input_stats=True, momentum=0.1, eps=1e-5) with rm = 0, rv = 1; then the same with
  // use_input_stats=False on the updated statistics.
  const std::vector<double> want_y = {-1.5421631747840654, -0.75395385986899666, 0.54498483486854288, 2.0203332579112967, 3.2499976338965952, -0.73127680914186244, -0.20755415958869278, -0.35940411545126144, -1.3209636078415536, -0.30356852591695155, -0.57010760286328988, -0.20790066377549113, 0.20084599800552666, 0.51881637172090667, 0.61545718192372167, -0.57673342925106152, -0.60022070342599065, -0.87658862641737167, 0.18492700210341792, 2.3665491493527573, -0.84052112082381447, 0.37217166154818659, 1.2624976192858191, 1.4121753603909457, 0.5452606899393464, -1.826548024374822, -2.5765123374218373, -0.13087571897497122, 0.35277152476381152, 0.80703675489021742, -0.39658117400092968, -0.18346495193389351, -0.15921994978555287, -0.38588986527344693, -0.8674083931132357, -0.83636822657199961, 0.42129261733211287, 0.87689962245761177, 1.2854284378670673, 1.5005190406386839, 0.14922812706200539, 0.1926879401226135, -0.030821619678659373, -0.51414443766359808, -1.1810897281378374, -0.020793144572918715, -1.1056373688817311, -2.0411897921170108, -2.4412065428735836, -2.0119593439169745, 0.58092896461075261, 1.0565593906591138, 2.2012693768340186, 3.7820284602583332, 1.8448664048086003, 0.36506460731790047, 0.70091696322119801, 0.8252708344632893, 0.63288142953470961, 0.088516898236604913, -0.1543628466578674, -0.53364891175051743, -1.069505379173918, -2.8442938345789477, -3.6468056760937166, -0.14364258171008887, -0.41891006609631842, -0.04768226230626204, 1.0152752932045694, 2.6393792063005925, 1.235777962500616, 2.2109019587795582};
  const std::vector<double> want_mean = {0.17701926531773546, -0.16808424417448758, 0.099694464407316052, -0.075405228995512025};
  const std::vector<double> want_var = {1.1293349970039364, 1.1815971023843213, 1.4260155643552186, 1.4368195802902186};
  const std::vector<double> want_eval = {-0.0089470879772077568, 1.1286283282316478, 3.0033089471165728, 5.1325911880613937, 6.9072923211727248, 1.1613567608080742, 1.9172143734622047, 1.6980584037560218, 0.31029703242114137, 0.376828012529344, 0.0041244212029185462, 0.51060110202579401, 1.0821546263112543, 1.5267749858354485, 1.6619085559068121, -0.005140521553392851, -0.037982953273927686, -0.42443029377796232, 2.4413615512985412, 5.1374011740848919, 1.1741170039283804, 2.672757726687907, 3.7730188614047084, 3.957989994548627, 2.8866604317922406, -0.044410963647768781, -0.97121375862297565, 0.57442048858517547, 1.3049520569111845, 1.9911031624873246, 0.17308206417408581, 0.49498636520724321, 0.53160755900662482, 0.18923089709571797, -0.53808532329986325, -0.49120028086857243, 1.2430183054583139, 2.1230854109543582, 2.9122145684178014, 3.3276914203342334, 0.71748861481118087, 0.80143717454658947, 0.3696979582217253, -0.56390602209247176, -1.8522018663370148, -1.3148286200900341, -3.169229165531712, -4.7684347335404622, -5.4522115045892408, -4.7184690722307128, -0.28626269101809848, 0.5267658542135395, 2.4834991576403507, 5.1856018566537463, 3.3906941475923769, 0.90284298240746375, 1.4674798657934416, 1.6765442986043066, 1.3530981411307703, 0.43790940722612692, 0.029578604168479655, -0.60807927716348331, -1.5089642058828356, -6.471309524806939, -8.0191576147665611, -1.2624170609775522, -1.7933403793562435, -1.0773331912856492, 0.97285066506721718, 4.1053479189851378, 1.3981461159812616, 3.2789206255077694};
  const Shape shape{4, 2, 3, 3};
  const std::string layer =
      "layer { name: 'in1' type: 'InstanceNorm' bottom: 'x' top: 'y' "
      "instance_norm_param { modalities: 2 track_running_stats: true } }";
  auto train = net_on({"x"}, shape, layer);
  param_of(*train, "in1.gamma").copy_(Tensor::from_vector(std::vector<double>{1.5, -0.5, 0.8, 2.0}, {2, 2}, DType::f64));
  param_of(*train, "in1.beta").copy_(Tensor::from_vector(std::vector<double>{0.1, -0.2, 0.3, 0.0}, {2, 2}, DType::f64));
  Tensor x = reference_input(shape);
  check_close(train->forward({{"x", x}}).at("y").to_vector<double>(), want_y, 1e-12);
  check_close(param_of(*train, "in1.mean").to_vector<double>(), want_mean, 1e-12);
  check_close(param_of(*train, "in1.variance").to_vector<double>(), want_var, 1e-12);
  auto test = net_on({"x"}, shape, layer, proto::TEST, train.get());
  check_close(test->forward({{"x", x}}).at("y").to_vector<double>(), want_eval, 1e-12);

  // Without running statistics TEST normalises with the instance statistics (pix2pix), and
  // a modality's affine reaches only its own slice.
  const std::string plain = "layer { name: 'in1' type: 'InstanceNorm' bottom: 'x' top: 'y' "
                            "instance_norm_param { modalities: 2 } }";
  auto train2 = net_on({"x"}, shape, plain);
  CHECK(train2->params().size() == 2);
  param_of(*train2, "in1.gamma").copy_(Tensor::from_vector(std::vector<double>{1.5, -0.5, 0.8, 2.0}, {2, 2}, DType::f64));
  param_of(*train2, "in1.beta").copy_(Tensor::from_vector(std::vector<double>{0.1, -0.2, 0.3, 0.0}, {2, 2}, DType::f64));
  auto test2 = net_on({"x"}, shape, plain, proto::TEST, train2.get());
  check_close(test2->forward({{"x", x}}).at("y").to_vector<double>(), want_y, 1e-12);
}

TEST_CASE("InstanceNorm: gradients for every option, setup errors") {
  Generator gen(3);
  for (const char* p : {"", "instance_norm_param { modalities: 2 }", "instance_norm_param { modalities: 2 affine: false }",
                        "instance_norm_param { modalities: 2 track_running_stats: true eps: 0.01 }"}) {
    INFO(p);
    auto net = net_on({"x"}, {4, 3, 2, 3},
                      std::string("layer { name: 'n' type: 'InstanceNorm' bottom: 'x' top: 'y' ") + p + " }");
    for (const Param& q : net->learnable_params()) q.value.copy_(random_input(q.value.shape(), gen, 0.5, 1.5));
    testing::check_net_grad(*net, {{"x", random_input({4, 3, 2, 3}, gen)}}, {"x"}, {"y"});
  }
  CHECK(setup_error({4, 3, 1, 1}, "layer { name: 'n' type: 'InstanceNorm' bottom: 'x' top: 'y' }")
            .find("more than one spatial value") != std::string::npos);
  CHECK(setup_error({3, 3, 2, 2}, "layer { name: 'n' type: 'InstanceNorm' bottom: 'x' top: 'y' "
                                  "instance_norm_param { modalities: 2 } }")
            .find("translation.prototxt:2") != std::string::npos);
  CHECK(setup_error({4, 3}, "layer { name: 'n' type: 'InstanceNorm' bottom: 'x' top: 'y' }").find("rank >= 3") !=
        std::string::npos);
}

TEST_CASE("ImageMetric: L1, RMSE, PSNR, SSIM against a direct computation, identical images, errors") {
  // The reference: numpy, SSIM window by window as skimage's structural_similarity (uniform
  // 7x7, ddof=1 covariances, data_range 2, the windows inside the image), on
  // x[i] = sin(0.37 i + 0.1)(1 + i mod 5)/5, y[i] = 0.8 cos(0.21 i), shape [2, 2, 9, 8].
  const Shape shape{2, 2, 9, 8};
  const std::string layer = "layer { name: 'm' type: 'ImageMetric' bottom: 'x' bottom: 'y' "
                            "top: 'l1' top: 'rmse' top: 'psnr' top: 'ssim' }";
  auto net = net_on({"x", "y"}, shape, layer, proto::TEST);
  std::vector<double> xv, yv;
  for (int64_t i = 0; i < 2 * 2 * 9 * 8; ++i) {
    xv.push_back(std::sin(0.37 * static_cast<double>(i) + 0.1) * (1 + i % 5) / 5);
    yv.push_back(0.8 * std::cos(0.21 * static_cast<double>(i)));
  }
  Tensor x = Tensor::from_vector(xv, shape, DType::f64), y = Tensor::from_vector(yv, shape, DType::f64);
  auto out = net->forward({{"x", x}, {"y", y}});
  CHECK(out.at("l1").item() == doctest::Approx(0.59753804355352225).epsilon(1e-12));
  CHECK(out.at("rmse").item() == doctest::Approx(0.72287328981154042).epsilon(1e-12));
  CHECK(out.at("psnr").item() == doctest::Approx(8.8411672966534027).epsilon(1e-12));
  CHECK(out.at("ssim").item() == doctest::Approx(-0.072534409542786518).epsilon(1e-10));
  out = net->forward({{"x", x}, {"y", x}});
  CHECK(out.at("l1").item() == 0);
  CHECK(out.at("rmse").item() == 0);
  CHECK(out.at("psnr").item() == doctest::Approx(100 + 20 * std::log10(2.0)));
  CHECK(out.at("ssim").item() == doctest::Approx(1).epsilon(1e-12));
  CHECK(net->loss_weights().empty());

  auto error = [](const Shape& s, const std::string& l) {
    try {
      net_on({"x", "y"}, s, l);
    } catch (const ParseError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  CHECK(error({1, 3, 5, 5}, layer).find("smaller than the SSIM window 7") != std::string::npos);
  CHECK(error({1, 3, 9, 9}, "layer { name: 'm' type: 'ImageMetric' bottom: 'x' bottom: 'y' top: 'a' "
                            "image_metric_param { ssim_window: 4 } }")
            .find("odd") != std::string::npos);
}
