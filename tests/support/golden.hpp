// The golden vectors of real bitsandbytes (tests/data/bnb_golden_public.tar.gz).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moeq_test {

struct GoldenCase {
  std::string name;
  std::string quant_type;  // "nf4" | "fp4"
  std::string dtype;       // "float32" | "float16" | "bfloat16"
  int32_t blocksize = 0;
  bool nested = false;
  bool special_values = false;
  std::vector<int64_t> shape;
  int64_t numel = 0;
  uint32_t nested_offset_bits = 0;
  // Raw little-endian bytes of each file.
  std::vector<uint8_t> input, packed, absmax, dequantized, quant_map, nested_absmax, nested_quant_map;
};

std::vector<std::string> golden_case_names();
GoldenCase load_golden_case(const std::string& name);

}  // namespace moeq_test
