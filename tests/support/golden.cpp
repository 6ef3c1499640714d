// Loader of the bitsandbytes golden vectors (manifest.json + raw .bin files).
#include "support/golden.hpp"

#include <nlohmann/json.hpp>

#include <fstream>
#include <iterator>
#include <stdexcept>

namespace moeq_test {
namespace {

std::string case_dir(const std::string& name) { return std::string(MOEQ_GOLDEN_DIR) + "/" + name; }

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw std::runtime_error("cannot open golden file " + path);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(file), {});
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream file(path);
  if (!file) throw std::runtime_error("cannot open " + path);
  return nlohmann::json::parse(file);
}

}  // namespace

std::vector<std::string> golden_case_names() {
  return read_json(std::string(MOEQ_GOLDEN_DIR) + "/index.json").at("cases").get<std::vector<std::string>>();
}

GoldenCase load_golden_case(const std::string& name) {
  const nlohmann::json manifest = read_json(case_dir(name) + "/manifest.json");
  GoldenCase golden;
  golden.name = name;
  golden.quant_type = manifest.at("quant_type");
  golden.dtype = manifest.at("dtype");
  golden.blocksize = manifest.at("blocksize");
  golden.nested = manifest.at("nested");
  golden.special_values = manifest.at("special_values");
  golden.shape = manifest.at("shape").get<std::vector<int64_t>>();
  golden.numel = manifest.at("numel");
  if (golden.nested) golden.nested_offset_bits = manifest.at("nested_offset_f32_hex").get<uint32_t>();
  const nlohmann::json& files = manifest.at("files");
  const auto load = [&](const char* key, std::vector<uint8_t>& into) {
    if (files.contains(key)) into = read_bytes(case_dir(name) + "/" + files.at(key).get<std::string>());
  };
  load("input", golden.input);
  load("packed", golden.packed);
  load("absmax", golden.absmax);
  load("dequantized", golden.dequantized);
  load("quant_map", golden.quant_map);
  load("nested_absmax", golden.nested_absmax);
  load("nested_quant_map", golden.nested_quant_map);
  return golden;
}

}  // namespace moeq_test
