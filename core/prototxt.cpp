#include "core/prototxt.h"

#include <fcntl.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <type_traits>

#include "base/error.h"
#include "core/caffe_upgrade.h"

namespace mmfuse {

namespace pb = google::protobuf;

size_t edit_distance(const std::string& a, const std::string& b) {
  // Levenshtein with adjacent transpositions counted as one edit (Damerau's "optimal string
  // alignment"): "Convolutoin" is one slip away from "Convolution".
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      size_t cost = std::tolower(a[i - 1]) == std::tolower(b[j - 1]) ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && std::tolower(a[i - 1]) == std::tolower(b[j - 2]) &&
          std::tolower(a[i - 2]) == std::tolower(b[j - 1]))
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[n][m];
}

std::string suggest(const std::string& name, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = SIZE_MAX;
  for (const auto& c : candidates) {
    size_t dist = edit_distance(name, c);
    if (dist < best_distance) {
      best_distance = dist;
      best = c;
    }
  }
  // A plausible typo: at most a third of the longer name differs (and at least one edit is
  // allowed for short names).
  size_t limit = std::max<size_t>(1, std::max(name.size(), best.size()) / 3);
  return best_distance <= limit ? best : std::string();
}

std::string did_you_mean(const std::string& name, const std::vector<std::string>& candidates) {
  std::string s = suggest(name, candidates);
  return s.empty() ? std::string() : "; did you mean '" + s + "'?";
}

namespace {

std::vector<std::string> field_names(const pb::Descriptor* d) {
  std::vector<std::string> names;
  for (int i = 0; i < d->field_count(); ++i) names.push_back(d->field(i)->name());
  return names;
}

// Enum values usable for a field called `field` anywhere in the schema of `root`.
std::vector<std::string> enum_values_for_field(const pb::Descriptor* root, const std::string& field) {
  std::vector<std::string> values;
  const pb::FileDescriptor* file = root->file();
  std::vector<const pb::Descriptor*> stack;
  for (int i = 0; i < file->message_type_count(); ++i) stack.push_back(file->message_type(i));
  while (!stack.empty()) {
    const pb::Descriptor* d = stack.back();
    stack.pop_back();
    for (int i = 0; i < d->nested_type_count(); ++i) stack.push_back(d->nested_type(i));
    for (int i = 0; i < d->field_count(); ++i) {
      const pb::FieldDescriptor* f = d->field(i);
      if (f->name() != field || f->enum_type() == nullptr) continue;
      for (int v = 0; v < f->enum_type()->value_count(); ++v) values.push_back(f->enum_type()->value(v)->name());
    }
  }
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  return values;
}

// Rewrites protobuf's messages into ours and adds the suggestion. `name` receives the unknown
// name, if any, so that the collector can point at it rather than at the token after it.
std::string explain(const std::string& message, const pb::Descriptor* root, std::string& name, std::string& in_type) {
  static const std::regex unknown_field(R"re(Message type "([\w.]+)" has no field named "(\w+)"\.?)re");
  static const std::regex unknown_enum(R"re(Unknown enumeration value of "(\w+)" for field "(\w+)"\.?)re");
  std::smatch m;
  if (std::regex_search(message, m, unknown_field)) {
    std::string type = m[1];
    name = m[2];
    in_type = type;
    const pb::Descriptor* d = pb::DescriptorPool::generated_pool()->FindMessageTypeByName(type);
    std::string short_type = type.substr(type.rfind('.') + 1);
    std::string out = "unknown field '" + name + "' in " + short_type;
    if (d) out += did_you_mean(name, field_names(d));
    return out;
  }
  if (std::regex_search(message, m, unknown_enum)) {
    std::string field = m[2];
    name = m[1];
    auto values = enum_values_for_field(root, field);
    std::string out = "unknown value '" + name + "' for field '" + field + "'";
    if (std::string s = suggest(name, values); !s.empty()) return out + "; did you mean '" + s + "'?";
    if (!values.empty()) {
      out += " (one of";
      for (const auto& v : values) out += " " + v;
      out += ")";
    }
    return out;
  }
  if (message.size() >= 5 && message.compare(message.size() - 5, 5, "got: ") == 0)
    return "unexpected end of file (a closing '}' missing?)";
  return message;
}

class Collector : public pb::io::ErrorCollector {
 public:
  Collector(std::string file, const std::string& text, const pb::Descriptor* root)
      : file_(std::move(file)), text_(text), root_(root) {}
  void AddError(int line, pb::io::ColumnNumber column, const std::string& message) override {
    if (!first_.empty()) return;  // the first error is the one to fix; the rest often follow from it
    std::string name;
    std::string text = explain(message, root_, name, unknown_field_in_);
    if (!name.empty()) locate(name, line, column);
    first_ = file_ + ":" + std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " + text;
    line_ = line + 1;
  }
  const std::string& first() const { return first_; }
  int line() const { return line_; }  // 1-based line of the first error
  // The full message type ("mmfuse.proto.LayerParameter") of the first error when it is an
  // unknown field, else "".
  const std::string& unknown_field_in() const { return unknown_field_in_; }

 private:
  // protobuf reports an unknown name at the token after it: move (line, column) back to the
  // last whole-word occurrence of `name` before that point.
  void locate(const std::string& name, int& line, int& column) const {
    std::vector<size_t> starts{0};
    for (size_t i = 0; i < text_.size(); ++i)
      if (text_[i] == '\n') starts.push_back(i + 1);
    if (line < 0 || static_cast<size_t>(line) >= starts.size()) return;
    size_t end = std::min(text_.size(), starts[static_cast<size_t>(line)] + static_cast<size_t>(std::max(column, 0)));
    auto word = [&](size_t i) { return i < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[i])) || text_[i] == '_'); };
    for (size_t pos = text_.rfind(name, end); pos != std::string::npos; pos = pos ? text_.rfind(name, pos - 1) : std::string::npos) {
      if ((pos > 0 && word(pos - 1)) || word(pos + name.size())) continue;
      size_t l = static_cast<size_t>(std::upper_bound(starts.begin(), starts.end(), pos) - starts.begin()) - 1;
      line = static_cast<int>(l);
      column = static_cast<int>(pos - starts[l]);
      return;
    }
  }
  std::string file_;
  const std::string& text_;
  const pb::Descriptor* root_;
  std::string first_;
  std::string unknown_field_in_;
  int line_ = 0;
};

std::string read_file(const std::string& path) {
  MMF_CHECK(!path.empty(), IOError, "no file name given (an empty path)");
  std::error_code ec;
  MMF_CHECK(!std::filesystem::is_directory(path, ec), IOError, path, ": is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  MMF_CHECK(in.good(), IOError, path, ": cannot open for reading (", std::strerror(errno), ")");
  std::ostringstream os;
  os << in.rdbuf();
  MMF_CHECK(!in.bad(), IOError, path, ": read failed");
  return os.str();
}

// A parse failure: the message to throw, where, and what kind.
struct ParseFailure {
  std::string message;
  int line = 0;
  std::string unknown_field_in;
};

bool try_parse(const std::string& text, const std::string& display_name, pb::Message& message,
               pb::TextFormat::ParseInfoTree* tree, ParseFailure* failure, bool allow_unknown_fields = false) {
  Collector collector(display_name, text, message.GetDescriptor());
  pb::TextFormat::Parser parser;
  parser.RecordErrorsTo(&collector);
  parser.AllowUnknownField(allow_unknown_fields);
  if (tree) parser.WriteLocationsTo(tree);
  if (parser.ParseFromString(text, &message)) return true;
  if (failure) {
    failure->message = collector.first().empty() ? display_name + ": cannot parse " + message.GetDescriptor()->name()
                                                 : collector.first();
    failure->line = collector.line();
    failure->unknown_field_in = collector.unknown_field_in();
  }
  return false;
}

void parse_with_locations(const std::string& text, const std::string& display_name, pb::Message& message,
                          pb::TextFormat::ParseInfoTree* tree) {
  ParseFailure failure;
  if (!try_parse(text, display_name, message, tree, &failure)) throw ParseError(failure.message);
}

// Copies each parsed layer's 1-based line into its source_line (`field`: "layer" or "layers").
template <typename L>
void record_lines(pb::TextFormat::ParseInfoTree& tree, const char* field, google::protobuf::RepeatedPtrField<L>& layers) {
  const pb::FieldDescriptor* f = proto::NetParameter::descriptor()->FindFieldByName(field);
  for (int i = 0; i < layers.size(); ++i) {
    pb::TextFormat::ParseLocation loc = tree.GetLocation(f, i);
    if (loc.line >= 0 && !layers.Get(i).has_source_line()) layers.Mutable(i)->set_source_line(loc.line + 1);
  }
}

// An unknown field inside a layer is most often the *_param of a layer type mmfuse lacks
// (python_param of a Python layer): when the layer holding the error has such a type, that
// is the message, not the field. `Root` is the file's message: a net, or a solver whose inline
// nets (net_param, train_net_param, test_net_param) hold the layers.
template <typename Root>
void explain_unknown_layer_field(const std::string& text, const std::string& display_name, const ParseFailure& failure) {
  if (failure.unknown_field_in != proto::LayerParameter::descriptor()->full_name() &&
      failure.unknown_field_in != proto::V1LayerParameter::descriptor()->full_name())
    return;
  Root root;
  pb::TextFormat::ParseInfoTree tree;
  if (!try_parse(text, display_name, root, &tree, nullptr, /*allow_unknown_fields=*/true)) return;
  std::vector<proto::NetParameter> nets;
  auto add = [&](const proto::NetParameter& net, pb::TextFormat::ParseInfoTree* located) {
    if (!located) return;
    nets.push_back(net);
    record_lines(*located, "layer", *nets.back().mutable_layer());
    record_lines(*located, "layers", *nets.back().mutable_layers());
  };
  if constexpr (std::is_same_v<Root, proto::NetParameter>) {
    add(root, &tree);
  } else {
    const pb::Descriptor* d = proto::SolverParameter::descriptor();
    if (root.has_net_param()) add(root.net_param(), tree.GetTreeForNested(d->FindFieldByName("net_param"), -1));
    if (root.has_train_net_param())
      add(root.train_net_param(), tree.GetTreeForNested(d->FindFieldByName("train_net_param"), -1));
    for (int i = 0; i < root.test_net_param_size(); ++i)
      add(root.test_net_param(i), tree.GetTreeForNested(d->FindFieldByName("test_net_param"), i));
  }
  // The layer that starts last at or before the error's line holds it.
  int best_line = 0;
  std::string name, type;
  auto consider = [&](int line, const std::string& n, const std::string& t) {
    if (line <= failure.line && line > best_line) best_line = line, name = n, type = t;
  };
  for (const proto::NetParameter& net : nets) {
    for (const auto& l : net.layer()) consider(l.source_line(), l.name(), l.type());
    for (const auto& l : net.layers()) consider(l.source_line(), l.name(), v1_layer_type_name(l.type()));
  }
  if (best_line == 0 || type.empty() || layer_type_supported(type)) return;
  throw ParseError(display_name + ":" + std::to_string(best_line) + ": layer '" + name + "': " +
                   unsupported_layer_type(type));
}

}  // namespace

void parse_text(const std::string& text, const std::string& display_name, pb::Message& message) {
  parse_with_locations(text, display_name, message, nullptr);
}

proto::NetParameter read_net_text(const std::string& text, const std::string& display_name) {
  proto::NetParameter net;
  pb::TextFormat::ParseInfoTree tree;
  ParseFailure failure;
  if (!try_parse(text, display_name, net, &tree, &failure)) {
    explain_unknown_layer_field<proto::NetParameter>(text, display_name, failure);
    // `layers { type: "Input" }`: a current layer under V1's `layers`, whose type is an enum.
    static const std::regex v1_string_type(R"re(^(.*): Expected integer or identifier, got: "(\w+)"$)re");
    std::smatch m;
    if (std::regex_match(failure.message, m, v1_string_type) && text.find("layers") != std::string::npos)
      throw ParseError(m[1].str() + ": type \"" + m[2].str() +
                       "\" in a `layers` entry: `layers` is Caffe's V1 format, whose type is an enum (CONVOLUTION); "
                       "write a layer with a string type as `layer { ... }`");
    throw ParseError(failure.message);
  }
  record_lines(tree, "layer", *net.mutable_layer());
  record_lines(tree, "layers", *net.mutable_layers());
  if (!net.has_source_file()) net.set_source_file(display_name);
  upgrade_v1_net(net, display_name);
  return net;
}

proto::NetParameter read_net(const std::string& path) { return read_net_text(read_file(path), path); }

proto::SolverParameter read_solver_text(const std::string& text, const std::string& display_name) {
  proto::SolverParameter solver;
  ParseFailure failure;
  if (!try_parse(text, display_name, solver, nullptr, &failure)) {
    explain_unknown_layer_field<proto::SolverParameter>(text, display_name, failure);
    throw ParseError(failure.message);
  }
  upgrade_solver_type(solver, display_name);
  if (solver.has_net_param()) upgrade_v1_net(*solver.mutable_net_param(), display_name);
  if (solver.has_train_net_param()) upgrade_v1_net(*solver.mutable_train_net_param(), display_name);
  for (proto::NetParameter& inline_net : *solver.mutable_test_net_param()) upgrade_v1_net(inline_net, display_name);
  return solver;
}

proto::SolverParameter read_solver(const std::string& path) { return read_solver_text(read_file(path), path); }

void write_binary_atomic(const std::string& path, const pb::Message& message) {
  std::string bytes;
  MMF_CHECK(message.SerializeToString(&bytes), IOError, path, ": cannot serialise ",
            message.GetDescriptor()->name());
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  MMF_CHECK(fd >= 0, IOError, tmp, ": cannot open for writing");
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      ::close(fd);
      ::unlink(tmp.c_str());
      throw IOError(tmp + ": write failed (disk full?)");
    }
    done += static_cast<size_t>(n);
  }
  bool synced = ::fsync(fd) == 0;
  bool closed = ::close(fd) == 0;
  if (!synced || !closed) {
    ::unlink(tmp.c_str());
    throw IOError(tmp + ": fsync/close failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw IOError(path + ": cannot rename " + tmp + " into place");
  }
}

void read_binary(const std::string& path, pb::Message& message) {
  std::string bytes = read_file(path);
  const std::string& kind = message.GetDescriptor()->name();
  MMF_CHECK(!bytes.empty(), IOError, path, ": empty file (expected a binary ", kind, ")");
  MMF_CHECK(message.ParseFromString(bytes), IOError, path, ": not a valid binary ", kind,
            " (truncated or another file type?)");
  // Another message type often parses, its fields landing among the unknown ones.
  MMF_CHECK(message.GetReflection()->GetUnknownFields(message).empty(), IOError, path, ": not a binary ", kind,
            " (it holds fields a ", kind, " does not have: another kind of file?)");
}

std::string layer_location(const proto::NetParameter& net, const proto::LayerParameter& layer) {
  if (layer.source_line() <= 0) return net.source_file();  // no line: the file alone (an inline net)
  return (net.source_file().empty() ? std::string("<text>") : net.source_file()) + ":" +
         std::to_string(layer.source_line());
}

}  // namespace mmfuse
