#include "core/net.h"

#include <google/protobuf/descriptor.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <set>

#include "core/ops.h"

namespace mmfuse {

namespace pb = google::protobuf;

bool layer_included(const proto::LayerParameter& layer, const proto::NetState& state) {
  // Caffe's Net::StateMeetsRule.
  auto meets = [&](const proto::NetStateRule& rule) {
    if (rule.has_phase() && rule.phase() != state.phase()) return false;
    if (rule.has_min_level() && state.level() < rule.min_level()) return false;
    if (rule.has_max_level() && state.level() > rule.max_level()) return false;
    auto has_stage = [&](const std::string& s) {
      return std::find(state.stage().begin(), state.stage().end(), s) != state.stage().end();
    };
    for (const auto& s : rule.stage())
      if (!has_stage(s)) return false;
    for (const auto& s : rule.not_stage())
      if (has_stage(s)) return false;
    return true;
  };
  if (layer.include_size() > 0)
    return std::any_of(layer.include().begin(), layer.include().end(), meets);
  return std::none_of(layer.exclude().begin(), layer.exclude().end(), meets);
}

namespace {

// "BatchNorm" -> "batch_norm", "InnerProduct" -> "inner_product", "ReLU" -> "relu".
std::string snake_case(const std::string& type) {
  std::string out;
  for (size_t i = 0; i < type.size(); ++i) {
    char c = type[i];
    bool upper = std::isupper(static_cast<unsigned char>(c));
    bool prev_lower = i > 0 && std::islower(static_cast<unsigned char>(type[i - 1]));
    if (upper && prev_lower) out += '_';
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

// NetDefaults fill what a layer leaves unset, found by field name in its *_param messages:
// weight_filler / bias_filler in messages that have a weight_filler (Convolution, InnerProduct,
// MMTM: not BatchNorm's or Scale's beta), `modalities`, `use_global_stats`.
void apply_defaults(proto::LayerParameter& lp, const proto::NetDefaults& d) {
  const pb::Reflection* refl = lp.GetReflection();
  const pb::Descriptor* desc = lp.GetDescriptor();
  if (const pb::FieldDescriptor* own = desc->FindFieldByName(snake_case(lp.type()) + "_param");
      own && own->message_type())
    refl->MutableMessage(&lp, own);
  for (int i = 0; i < desc->field_count(); ++i) {
    const pb::FieldDescriptor* f = desc->field(i);
    if (f->is_repeated() || !f->message_type() || !refl->HasField(lp, f)) continue;
    pb::Message* m = refl->MutableMessage(&lp, f);
    const pb::Reflection* mr = m->GetReflection();
    const pb::Descriptor* md = m->GetDescriptor();
    const pb::FieldDescriptor* wf = md->FindFieldByName("weight_filler");
    if (wf && wf->message_type() == proto::FillerParameter::descriptor()) {
      if (d.has_weight_filler() && !mr->HasField(*m, wf)) mr->MutableMessage(m, wf)->CopyFrom(d.weight_filler());
      const pb::FieldDescriptor* bf = md->FindFieldByName("bias_filler");
      if (bf && d.has_bias_filler() && !mr->HasField(*m, bf)) mr->MutableMessage(m, bf)->CopyFrom(d.bias_filler());
    }
    const pb::FieldDescriptor* mf = md->FindFieldByName("modalities");
    if (mf && mf->cpp_type() == pb::FieldDescriptor::CPPTYPE_INT32 && d.has_modalities() && !mr->HasField(*m, mf))
      mr->SetInt32(m, mf, d.modalities());
    const pb::FieldDescriptor* gf = md->FindFieldByName("use_global_stats");
    if (gf && gf->cpp_type() == pb::FieldDescriptor::CPPTYPE_BOOL && d.has_use_global_stats() &&
        !mr->HasField(*m, gf))
      mr->SetBool(m, gf, d.use_global_stats());
  }
}

std::string shapes_str(const std::vector<Shape>& shapes) {
  std::string s;
  for (size_t i = 0; i < shapes.size(); ++i) s += (i ? ", " : "") + shape_str(shapes[i]);
  return s;
}

// Rethrows the current exception with `prefix` added, keeping its type.
[[noreturn]] void rethrow_with(const std::string& prefix) {
  try {
    throw;
  } catch (const ParseError& e) {
    throw ParseError(prefix + e.what());
  } catch (const OpError& e) {
    throw OpError(prefix + e.what());
  } catch (const IOError& e) {
    throw IOError(prefix + e.what());
  } catch (const DeviceError& e) {
    throw DeviceError(prefix + e.what());
  } catch (const std::exception& e) {
    throw Error(prefix + e.what());
  }
}

std::string with_commas(int64_t n) {
  std::string s = std::to_string(n), out;
  int count = 0;
  for (auto it = s.rbegin(); it != s.rend(); ++it) {
    if (count && count % 3 == 0 && *it != '-') out += ',';
    out += *it;
    ++count;
  }
  return std::string(out.rbegin(), out.rend());
}

std::string mib(double bytes) {
  char buf[32];
  if (bytes < 1024.0 * 1024.0)
    std::snprintf(buf, sizeof buf, "%.1f KiB", bytes / 1024.0);
  else
    std::snprintf(buf, sizeof buf, "%.2f MiB", bytes / (1024.0 * 1024.0));
  return buf;
}

uint64_t mix_seed(uint64_t seed) {  // splitmix64: the forward generator's stream differs from init's
  uint64_t z = seed + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

Net::Net(const proto::NetParameter& param, proto::Phase phase, Device device, uint64_t seed, const Net* share_with,
         DType dtype)
    : param_(param), phase_(phase), device_(device), dtype_(dtype), init_gen_(seed), forward_gen_(mix_seed(seed)) {
  MMF_CHECK(is_floating(dtype), ParseError, "Net: dtype must be float32 or float64, got ", dtype_name(dtype));
  const std::string file = param_.source_file().empty() ? "<net>" : param_.source_file();
  proto::NetState state = param_.state();
  state.set_phase(phase);

  MMF_CHECK(param_.layer_size() > 0 || param_.input_size() > 0, ParseError, file,
            ": the net has no layers (an empty file?)");
  // Caffe deploy inputs: `input: "data"` with one input_shape each, or four input_dim each.
  if (param_.input_size() > 0) {
    bool by_shape = param_.input_shape_size() == param_.input_size();
    bool by_dim = param_.input_shape_size() == 0 && param_.input_dim_size() == 4 * param_.input_size();
    MMF_CHECK(by_shape || by_dim, ParseError, file, ": ", param_.input_size(),
              " input(s) need as many input_shape blocks or 4 input_dim values each, got ",
              param_.input_shape_size(), " input_shape and ", param_.input_dim_size(), " input_dim");
    for (int i = 0; i < param_.input_size(); ++i) {
      Shape s;
      if (by_shape)
        s.assign(param_.input_shape(i).dim().begin(), param_.input_shape(i).dim().end());
      else
        for (int k = 0; k < 4; ++k) s.push_back(param_.input_dim(4 * i + k));
      const std::string& name = param_.input(i);
      MMF_CHECK(!blob_shapes_.count(name), ParseError, file, ": input '", name, "' declared twice");
      for (int64_t d : s)
        MMF_CHECK(d > 0, ParseError, file, ": input '", name, "' has shape ", shape_str(s),
                  " (every dim must be positive)");
      double bytes = tensor_bytes(s, dtype_), memory = device_memory_bytes(device_);
      MMF_CHECK(memory <= 0 || bytes <= memory, ParseError, file, ": input '", name, "' ", shape_str(s), " needs ",
                bytes_str(bytes), ", more than the ", bytes_str(memory), " of memory of ", device_.str());
      activation_bytes_ += bytes;
      inputs_.emplace_back(name, s);
      blob_shapes_[name] = s;
      blob_order_.push_back(name);
    }
  }

  std::map<std::string, std::pair<Tensor, std::string>> shared_by_name;
  LayerContext ctx{init_gen_, device_, dtype_, phase_};
  for (const auto& lp : param_.layer()) {
    if (!layer_included(lp, state)) continue;
    MMF_CHECK(!lp.name().empty(), ParseError, where(lp), ": a layer has no name");
    add_layer(lp, ctx, share_with, shared_by_name);
  }

  // Caffe's net outputs: blobs produced and not consumed afterwards.
  std::vector<std::string> available;
  for (const auto& [name, shape] : inputs_) available.push_back(name);
  for (size_t i = 0; i < layers_.size(); ++i) {
    for (const auto& b : bottoms_[i]) available.erase(std::remove(available.begin(), available.end(), b), available.end());
    for (const auto& t : tops_[i]) {
      available.erase(std::remove(available.begin(), available.end(), t), available.end());
      available.push_back(t);
    }
  }
  outputs_ = available;
}

Net::~Net() = default;

std::string Net::where(const proto::LayerParameter& lp) const {
  std::string loc = layer_location(param_, lp);
  return "layer '" + lp.name() + "'" + (loc.empty() ? "" : " (" + loc + ")");
}

void Net::add_layer(const proto::LayerParameter& given, LayerContext& ctx, const Net* share_with,
                    std::map<std::string, std::pair<Tensor, std::string>>& shared_by_name) {
  proto::LayerParameter lp = given;
  if (param_.has_defaults()) apply_defaults(lp, param_.defaults());
  std::string loc = layer_location(param_, lp);
  std::string at = loc.empty() ? "" : loc + ": ";

  std::unique_ptr<Layer> layer;
  try {
    layer = create_layer(lp);
    // Caffe's AutoTopBlobs: a loss layer given no top gets one (named "<layer> (automatic)"
    // here; Caffe calls it "(automatic)"), whose loss counts as usual.
    if (layer->is_loss() && lp.top_size() == 0 && layer->arity().min_tops == 1) {
      lp.add_top(lp.name() + " (automatic)");
      layer = create_layer(lp);
    }
  } catch (const ParseError& e) {
    throw ParseError(where(lp) + ": " + e.what());
  }
  std::vector<Shape> bottom_shapes;
  std::vector<Shape> top_shapes;
  try {
    layer->check_arity();
    for (const auto& b : lp.bottom()) {
      auto it = blob_shapes_.find(b);
      if (it == blob_shapes_.end())
        throw ParseError(layer->describe() + ": bottom '" + b + "' is not a top of any earlier layer" +
                         did_you_mean(b, blob_order_));
      bottom_shapes.push_back(it->second);
    }
    for (int t = 0; t < lp.top_size(); ++t) {
      const std::string& top = lp.top(t);
      bool in_place = std::find(lp.bottom().begin(), lp.bottom().end(), top) != lp.bottom().end();
      if (blob_shapes_.count(top) && !in_place)
        throw ParseError(layer->describe() + ": top '" + top +
                         "' is already produced by an earlier layer (only an in-place layer, with a bottom of "
                         "the same name, may reuse a name)");
      if (std::find(lp.top().begin(), lp.top().begin() + t, top) != lp.top().begin() + t)
        throw ParseError(layer->describe() + ": top '" + top + "' appears twice");
    }
    top_shapes = layer->setup(bottom_shapes, ctx);
    MMF_CHECK(top_shapes.size() == static_cast<size_t>(lp.top_size()), ParseError, layer->describe(),
              ": setup returned ", top_shapes.size(), " shapes for ", lp.top_size(), " tops");
    // Estimated before the first forward allocates: a top that cannot fit is refused here.
    const double memory = device_memory_bytes(device_);
    for (int t = 0; t < lp.top_size(); ++t) {
      double bytes = tensor_bytes(top_shapes[t], dtype_);
      if (memory > 0 && bytes > memory)
        throw ParseError(layer->describe() + ": top '" + lp.top(t) + "' " + shape_str(top_shapes[t]) + " needs " +
                         bytes_str(bytes) + ", more than the " + bytes_str(memory) + " of memory of " +
                         device_.str());
      activation_bytes_ += bytes;
      if (bytes > largest_top_bytes_) {
        largest_top_bytes_ = bytes;
        largest_top_ = layer->describe() + " top '" + lp.top(t) + "' " + shape_str(top_shapes[t]);
      }
    }
    if (lp.loss_weight_size() > 0 && lp.loss_weight_size() != lp.top_size())
      throw ParseError(layer->describe() + ": " + std::to_string(lp.loss_weight_size()) + " loss_weight values for " +
                       std::to_string(lp.top_size()) + " tops (give one per top)");
  } catch (const ParseError& e) {
    throw ParseError(at + e.what());
  } catch (const Error& e) {
    throw ParseError(at + layer->describe() +
                     (bottom_shapes.empty() ? "" : " with bottoms " + shapes_str(bottom_shapes)) + ": " + e.what());
  }

  // Caffe accepts a layer name used twice (each layer has its own parameters; its name index,
  // layer_by_name, keeps the last; CopyTrainedLayersFrom copies a model's weights into the
  // first). Parameters are keyed by name in snapshots, so the k-th layer
  // of a repeated name (k >= 2) names its parameters "<layer>#k.<param>".
  int64_t earlier = std::count_if(layers_.begin(), layers_.end(), [&](const auto& l) { return l->name() == lp.name(); });
  if (earlier > 0)
    for (Param& p : layer->params())
      p.name = lp.name() + "#" + std::to_string(earlier + 1) + p.name.substr(lp.name().size());

  // Parameter sharing: by `param { name }` within the net, and by full name with share_with.
  std::map<std::string, Tensor> other;
  if (share_with)
    for (const auto& p : share_with->params()) other[p.name] = p.value;
  auto& params = layer->params();
  for (size_t k = 0; k < params.size(); ++k) {
    Param& p = params[k];
    Tensor from_other;
    if (auto it = other.find(p.name); it != other.end()) {
      MMF_CHECK(it->second.shape() == p.value.shape(), ParseError, at, layer->describe(), ": parameter '", p.name,
                "' has shape ", shape_str(p.value.shape()), " here but ", shape_str(it->second.shape()),
                " in the ", share_with->phase() == proto::TRAIN ? "TRAIN" : "TEST", " net it shares with");
      from_other = it->second;
    }
    std::string spec = static_cast<int>(k) < lp.param_size() ? lp.param(static_cast<int>(k)).name() : "";
    if (!spec.empty()) {
      auto it = shared_by_name.find(spec);
      if (it != shared_by_name.end()) {
        const Tensor& owner = it->second.first;
        MMF_CHECK(owner.shape() == p.value.shape(), ParseError, at, layer->describe(), ": shared parameter '", spec,
                  "' has shape ", shape_str(p.value.shape()), " here but ", shape_str(owner.shape()),
                  " in layer '", it->second.second, "'");
        p.value = owner;
        continue;
      }
      shared_by_name[spec] = {from_other.defined() ? from_other : p.value, lp.name()};
    }
    if (from_other.defined()) p.value = from_other;
  }

  // Loss tops.
  std::vector<float> weights(lp.top_size(), 0.f);
  if (lp.loss_weight_size() > 0)
    for (int t = 0; t < lp.top_size(); ++t) weights[t] = lp.loss_weight(t);
  else if (layer->is_loss() && lp.top_size() > 0)
    weights[0] = 1.f;
  for (int t = 0; t < lp.top_size(); ++t)
    if (weights[t] != 0) loss_weights_.emplace_back(lp.top(t), weights[t]);

  if (layer->is_input())
    for (int t = 0; t < lp.top_size(); ++t) inputs_.emplace_back(lp.top(t), top_shapes[t]);
  for (int t = 0; t < lp.top_size(); ++t) {
    if (!blob_shapes_.count(lp.top(t))) blob_order_.push_back(lp.top(t));
    blob_shapes_[lp.top(t)] = top_shapes[t];
  }
  bottoms_.emplace_back(lp.bottom().begin(), lp.bottom().end());
  tops_.emplace_back(lp.top().begin(), lp.top().end());
  top_shapes_.push_back(top_shapes);
  top_loss_weights_.push_back(weights);
  layers_.push_back(std::move(layer));
}

void Net::check_memory() const {
  double params_bytes = 0;
  for (const auto& p : params()) params_bytes += tensor_bytes(p.value.shape(), p.value.dtype());
  double memory = device_memory_bytes(device_);
  MMF_CHECK(memory <= 0 || activation_bytes_ + params_bytes <= memory, Error, where_net(), ": one forward keeps ",
            bytes_str(activation_bytes_), " of blobs (the largest: ", largest_top_, ", ", bytes_str(largest_top_bytes_),
            ") and ", bytes_str(params_bytes), " of parameters, more than the ", bytes_str(memory), " of memory of ",
            device_.str(), " (reduce the batch or the input size)");
}

void Net::check_input(const std::string& name, const Shape& shape) const {
  auto it = std::find_if(inputs_.begin(), inputs_.end(), [&](const auto& in) { return in.first == name; });
  if (it == inputs_.end()) {
    std::string known;
    for (const auto& [n, s] : inputs_) known += (known.empty() ? "" : ", ") + n + " " + shape_str(s);
    throw Error(where_net() + ": no input named '" + name + "' (" +
                (known.empty() ? std::string("the net has no inputs") : "its inputs: " + known) + ")");
  }
  MMF_CHECK(shape == it->second, Error, where_net(), ": input '", name, "' has shape ", shape_str(shape),
            ", the net declares ", shape_str(it->second));
}

std::string Net::where_net() const {
  return "net '" + name() + "'" + (param_.source_file().empty() ? std::string() : " (" + param_.source_file() + ")");
}

std::map<std::string, Tensor> Net::forward(const std::map<std::string, Tensor>& inputs, int64_t iteration,
                                           const Hooks* hooks) {
  MMF_CHECK(iteration >= 0, Error, where_net(), ": batch index ", iteration, " is negative");
  if (!memory_checked_) {
    check_memory();
    memory_checked_ = true;
  }
  blobs_.clear();
  std::map<std::string, Tensor> fed;
  for (const auto& [name, t] : inputs) {
    MMF_CHECK(t.defined(), Error, "Net::forward: input '", name, "' is undefined");
    check_input(name, t.shape());
    Tensor v = t.device() == device_ ? t : t.to(device_);
    if (is_floating(v.dtype()) && v.dtype() != dtype_) v = v.to(dtype_);
    fed[name] = v;
  }
  for (int i = 0; i < param_.input_size(); ++i) {
    auto it = fed.find(param_.input(i));
    MMF_CHECK(it != fed.end(), Error, "Net::forward: no tensor given for input '", param_.input(i), "' (shape ",
              shape_str(blob_shapes_.at(param_.input(i))), ")");
    blobs_[param_.input(i)] = it->second;
  }
  ForwardContext ctx{phase_, device_, &forward_gen_, iteration, &fed};
  Tensor loss;
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& layer = *layers_[i];
    TensorList bottoms;
    std::vector<Shape> shapes;
    for (const auto& b : bottoms_[i]) {
      bottoms.push_back(blobs_.at(b));
      shapes.push_back(bottoms.back().shape());
    }
    TensorList tops;
    if (hooks && hooks->before) hooks->before(i);
    try {
      autograd::ScopeGuard scope(layer.name());
      tops = layer.forward(bottoms, ctx);
      MMF_CHECK(tops.size() == tops_[i].size(), Error, "forward returned ", tops.size(), " tensors for ",
                tops_[i].size(), " tops");
    } catch (...) {
      rethrow_with(layer.describe() + (shapes.empty() ? "" : " with bottoms " + shapes_str(shapes)) + ": ");
    }
    if (hooks && hooks->after) hooks->after(i, tops);
    for (size_t t = 0; t < tops.size(); ++t) {
      blobs_[tops_[i][t]] = tops[t];
      float w = top_loss_weights_[i][t];
      if (w != 0) {
        Tensor term = sum(tops[t]) * static_cast<double>(w);
        loss = loss.defined() ? loss + term : term;
      }
    }
  }
  loss_ = loss.defined() ? loss : Tensor::scalar(0, dtype_, device_);
  return blobs_;
}

Tensor Net::blob(const std::string& name) const {
  auto it = blobs_.find(name);
  if (it == blobs_.end()) {
    MMF_CHECK(blob_shapes_.count(name) == 0, Error, "Net::blob: '", name, "' has no value yet (run forward first)");
    throw Error("Net::blob: no blob named '" + name + "'" + did_you_mean(name, blob_order_));
  }
  return it->second;
}

const Layer* Net::layer(const std::string& name) const {
  // The last of a repeated name, as Caffe's layer_by_name (its name index keeps the last).
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it)
    if ((*it)->name() == name) return it->get();
  return nullptr;
}

const Shape& Net::blob_shape(const std::string& name) const {
  auto it = blob_shapes_.find(name);
  MMF_CHECK(it != blob_shapes_.end(), Error, "Net::blob_shape: no blob named '", name, "'",
            did_you_mean(name, blob_order_));
  return it->second;
}

std::vector<Param> Net::params() const {
  std::vector<Param> out;
  std::set<const TensorImpl*> seen;
  for (const auto& l : layers_)
    for (const auto& p : l->params())
      if (seen.insert(p.value.unsafe_impl()).second) out.push_back(p);
  return out;
}

std::vector<Param> Net::learnable_params() const {
  std::vector<Param> out;
  for (auto& p : params())
    if (p.learnable) out.push_back(p);
  return out;
}

int64_t Net::num_learnable() const {
  int64_t n = 0;
  for (const auto& p : learnable_params()) n += p.value.numel();
  return n;
}

std::string Net::summary() const {
  size_t wn = 5, wt = 4, ws = 10;
  std::vector<std::string> top_cells;
  for (size_t i = 0; i < layers_.size(); ++i) {
    wn = std::max(wn, layers_[i]->name().size());
    wt = std::max(wt, layers_[i]->type().size());
    std::string cell;
    for (size_t t = 0; t < tops_[i].size(); ++t)
      cell += (t ? "  " : "") + tops_[i][t] + " " + shape_str(top_shapes_[i][t]);
    if (cell.empty()) cell = "-";
    top_cells.push_back(cell);
    ws = std::max(ws, cell.size());
  }
  std::string out;
  auto row = [&](const std::string& a, const std::string& b, const std::string& c, const std::string& d) {
    std::string r = "  " + a + std::string(wn + 2 - a.size(), ' ') + b + std::string(wt + 2 - b.size(), ' ') + c;
    r += std::string(ws + 2 > c.size() ? ws + 2 - c.size() : 2, ' ') + d + "\n";
    out += r;
  };
  out += "Net '" + name() + "' (" + (phase_ == proto::TRAIN ? "TRAIN" : "TEST") + ", " + device_.str() + ", " +
         dtype_name(dtype_) + "): " + std::to_string(layers_.size()) + " layers\n";
  for (const auto& [name, shape] : inputs_)
    if (!param_.input().empty() && std::find(param_.input().begin(), param_.input().end(), name) != param_.input().end())
      out += "  input " + name + " " + shape_str(shape) + "\n";
  row("layer", "type", "top shapes", "params");
  std::set<const TensorImpl*> seen;
  double activation_bytes = 0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    int64_t count = 0;
    bool shared = false;
    for (const auto& p : layers_[i]->params()) {
      count += p.value.numel();
      if (!seen.insert(p.value.unsafe_impl()).second) shared = true;
    }
    for (const auto& s : top_shapes_[i]) activation_bytes += 4.0 * static_cast<double>(shape_numel(s));
    row(layers_[i]->name(), layers_[i]->type(), top_cells[i], with_commas(count) + (shared ? " (shared)" : ""));
  }
  int64_t total = 0, learnable = 0;
  for (const auto& p : params()) {
    total += p.value.numel();
    if (p.learnable) learnable += p.value.numel();
  }
  out += "Outputs:";
  for (const auto& o : outputs_) out += " " + o;
  out += "\nParameters: " + with_commas(learnable) + " learnable";
  if (total != learnable) out += " + " + with_commas(total - learnable) + " state";
  out += " (" + mib(4.0 * static_cast<double>(total)) + " float32)\n";
  out += "Activations: " + mib(activation_bytes) + " float32 (all tops of one forward, batch as declared)\n";
  return out;
}

}  // namespace mmfuse
