// Reading nets and solvers from prototxt (protobuf text format) with errors for people, and
// the binary read/write used by snapshots.
//
// Errors are ParseError with "file:line:col: message" (1-based). An unknown field or enum
// value suggests the nearest known name of that message type ("did you mean 'kernel_size'?").
// read_net records each layer's line in LayerParameter.source_line and the file in
// NetParameter.source_file, so that the Net can name them ("layer 'conv1' (net.prototxt:12)").
#pragma once
#include <string>
#include <vector>

#include "base/error.h"

#include "core/proto/mmfuse.pb.h"  // generated into the build tree

namespace google::protobuf { class Message; }

namespace mmfuse {

proto::NetParameter read_net(const std::string& path);
// `display_name` stands for the file in messages.
proto::NetParameter read_net_text(const std::string& text, const std::string& display_name = "<text>");
proto::SolverParameter read_solver(const std::string& path);
proto::SolverParameter read_solver_text(const std::string& text, const std::string& display_name = "<text>");

// Any message from text (the two above are this plus layer locations).
void parse_text(const std::string& text, const std::string& display_name, google::protobuf::Message& message);

// Serialises `message` to path.tmp, fsyncs it and renames it over `path`, so that a crash
// never leaves a half-written file under `path`. Throws IOError.
void write_binary_atomic(const std::string& path, const google::protobuf::Message& message);
// Parses a binary message from `path`. Throws IOError.
void read_binary(const std::string& path, google::protobuf::Message& message);

// The candidate nearest to `name` by edit distance (case-insensitive), or "" when none is
// close enough to be a plausible typo.
std::string suggest(const std::string& name, const std::vector<std::string>& candidates);
// " did you mean 'x'?" or "" (for appending to a message).
std::string did_you_mean(const std::string& name, const std::vector<std::string>& candidates);
size_t edit_distance(const std::string& a, const std::string& b);

// "file:line" of a layer; the file alone for a layer without a line (an inline net_param);
// "" when unknown (built in code).
std::string layer_location(const proto::NetParameter& net, const proto::LayerParameter& layer);

}  // namespace mmfuse
