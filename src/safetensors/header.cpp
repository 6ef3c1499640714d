// Header validation: everything a hostile file could lie about is checked here,
// before any tensor byte is touched.
#include "safetensors/header.hpp"

#include "safetensors/error.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <limits>
#include <set>

namespace moeq::safetensors {
namespace {

using nlohmann::json;

std::string quoted(const std::string& name) { return "tensor '" + name + "'"; }

uint64_t unsigned_field(const json& value, const std::string& what) {
  if (!value.is_number_unsigned())
    throw Error(what + ": expected a non-negative integer, got " + value.dump());
  return value.get<uint64_t>();
}

TensorInfo parse_tensor(const std::string& name, const json& entry) {
  const std::string where = quoted(name);
  if (!entry.is_object()) throw Error(where + ": expected an object, got " + entry.dump());
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!entry.contains(field)) throw Error(where + ": missing \"" + field + "\"");

  TensorInfo info;
  info.name = name;
  const json& dtype = entry["dtype"];
  if (!dtype.is_string()) throw Error(where + ": dtype must be a string, got " + dtype.dump());
  const std::optional<Dtype> parsed = parse_dtype(dtype.get<std::string>());
  if (!parsed) throw Error(where + ": unknown or unsupported dtype " + dtype.dump());
  info.dtype = *parsed;

  const json& shape = entry["shape"];
  if (!shape.is_array()) throw Error(where + ": shape must be an array, got " + shape.dump());
  int64_t numel = 1;
  bool overflow = false;
  for (const json& size : shape) {
    const uint64_t dim = unsigned_field(size, where + ": shape entry");
    if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) overflow = true;
    info.shape.push_back(static_cast<int64_t>(dim));
    overflow = overflow || __builtin_mul_overflow(numel, static_cast<int64_t>(dim), &numel);
  }
  int64_t bytes = 0;
  if (overflow || __builtin_mul_overflow(numel, dtype_bytes(info.dtype), &bytes))
    throw Error(where + ": shape " + shape.dump() + " of " + dtype_name(info.dtype) +
                " holds more bytes than fit in 64 bits");
  info.numel = numel;

  const json& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    throw Error(where + ": data_offsets must be [begin, end], got " + offsets.dump());
  info.begin = unsigned_field(offsets[0], where + ": data_offsets begin");
  info.end = unsigned_field(offsets[1], where + ": data_offsets end");
  if (info.end < info.begin)
    throw Error(where + ": data_offsets " + offsets.dump() + " end before they begin");
  if (info.bytes() != static_cast<uint64_t>(bytes))
    throw Error(where + ": data_offsets " + offsets.dump() + " hold " + std::to_string(info.bytes()) +
                " bytes, but " + dtype_name(info.dtype) + " " + shape.dump() + " needs " +
                std::to_string(bytes));
  return info;
}

std::map<std::string, std::string> parse_metadata(const json& metadata) {
  if (!metadata.is_object()) throw Error("__metadata__: expected an object, got " + metadata.dump());
  std::map<std::string, std::string> result;
  for (const auto& [key, value] : metadata.items()) {
    if (!value.is_string()) throw Error("__metadata__ '" + key + "': expected a string, got " + value.dump());
    result[key] = value.get<std::string>();
  }
  return result;
}

// Sorted by offset, the tensors must follow each other exactly from 0 to the
// end of the data section: an overlap could alias two tensors, a hole could
// hide a second file format inside this one.
void check_tiling(const std::vector<TensorInfo>& tensors, uint64_t data_bytes) {
  uint64_t position = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& tensor : tensors) {
    if (tensor.end > data_bytes)
      throw Error(quoted(tensor.name) + ": data_offsets [" + std::to_string(tensor.begin) + ", " +
                  std::to_string(tensor.end) + "] run past the end of the data section (" +
                  std::to_string(data_bytes) + " bytes): the file is truncated or the offsets are wrong");
    if (tensor.begin < position)
      throw Error(quoted(tensor.name) + " overlaps " + quoted(previous->name) + ": it begins at byte " +
                  std::to_string(tensor.begin) + ", before the other ends at " + std::to_string(position));
    if (tensor.begin > position)
      throw Error("bytes " + std::to_string(position) + ".." + std::to_string(tensor.begin) +
                  " of the data section belong to no tensor (a hole before " + quoted(tensor.name) + ")");
    position = tensor.end;
    previous = &tensor;
  }
  if (position != data_bytes)
    throw Error("the data section has " + std::to_string(data_bytes) + " bytes but its tensors end at byte " +
                std::to_string(position));
}

}  // namespace

Header parse_header(std::string_view text, uint64_t data_bytes) {
  // nlohmann keeps the last of repeated keys; a repeated tensor name is refused
  // instead, since two readers could disagree on which one is meant.
  std::set<std::string> names;
  std::string repeated;
  const json::parser_callback_t refuse_repeated_names = [&](int depth, json::parse_event_t event,
                                                            json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key && !names.insert(parsed.get<std::string>()).second &&
        repeated.empty())
      repeated = parsed.get<std::string>();
    return true;
  };
  json document;
  try {
    document = json::parse(text.begin(), text.end(), refuse_repeated_names);
  } catch (const json::exception& error) {
    throw Error(std::string("the header is not valid JSON: ") + error.what());
  }
  if (!repeated.empty()) throw Error("the header names '" + repeated + "' twice");
  if (!document.is_object())
    throw Error("the header must be a JSON object, got " + std::string(document.type_name()));

  Header header;
  for (const auto& [name, entry] : document.items()) {
    if (name == "__metadata__") header.metadata = parse_metadata(entry);
    else header.tensors.push_back(parse_tensor(name, entry));
  }
  std::sort(header.tensors.begin(), header.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  check_tiling(header.tensors, data_bytes);
  return header;
}

std::string serialize_header(const Header& header) {
  nlohmann::ordered_json document = nlohmann::ordered_json::object();
  if (!header.metadata.empty()) document["__metadata__"] = header.metadata;
  for (const TensorInfo& tensor : header.tensors)
    document[tensor.name] = {{"dtype", dtype_name(tensor.dtype)},
                             {"shape", tensor.shape},
                             {"data_offsets", {tensor.begin, tensor.end}}};
  std::string text = document.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

}  // namespace moeq::safetensors
