// The inspect report: 4-bit tensors grouped by how they were quantized, the
// other tensors by dtype, then totals; optionally every tensor.
#include "cli/inspect_command.hpp"

#include "cli/byte_units.hpp"
#include "cli/quantized_tensors.hpp"
#include "cli/tensor_selection.hpp"
#include "safetensors/checkpoint.hpp"

#include <algorithm>
#include <cstdio>
#include <map>

namespace moeq::cli {
namespace {

using safetensors::TensorInfo;

struct Tally {
  uint64_t tensors = 0, logical_bytes = 0, stored_bytes = 0;
  void add(uint64_t logical, uint64_t stored) {
    ++tensors;
    logical_bytes += logical;
    stored_bytes += stored;
  }
};

std::string describe(const QuantState& state) {
  return std::string(format_name(state.format)) + " blocksize " + std::to_string(state.blocksize) +
         (state.nested ? " double-quant" : "") + ", " + safetensors::torch_dtype_name(state.dtype);
}

void print_quantized(const QuantizedTensors& quantized, Tally& total) {
  std::printf("4-bit tensors (bitsandbytes layout): %zu\n", quantized.tensors.size());
  std::map<std::string, Tally> by_kind;
  for (const QuantizedTensor& tensor : quantized.tensors) {
    by_kind[describe(tensor.state)].add(tensor.logical_bytes(), tensor.stored_bytes());
    total.add(tensor.logical_bytes(), tensor.stored_bytes());
  }
  for (const auto& [kind, tally] : by_kind)
    std::printf("  %-42s %6llu tensors  %s original -> %s stored (%.1f%%)\n", kind.c_str(),
                (unsigned long long)tally.tensors, human_bytes(tally.logical_bytes).c_str(),
                human_bytes(tally.stored_bytes).c_str(),
                100.0 * tally.stored_bytes / std::max<uint64_t>(tally.logical_bytes, 1));
}

void print_unquantized(const safetensors::Checkpoint& checkpoint, const QuantizedTensors& quantized,
                       Tally& total) {
  std::map<std::string, Tally> by_dtype;
  Tally candidates, others;
  for (const auto& file : checkpoint.files())
    for (const TensorInfo& tensor : file->tensors()) {
      if (quantized.member_keys.count(tensor.name) != 0) continue;
      by_dtype[safetensors::dtype_name(tensor.dtype)].add(tensor.bytes(), tensor.bytes());
      total.add(tensor.bytes(), tensor.bytes());
      if (is_expert_weight(tensor)) candidates.add(tensor.bytes(), 0);
      else if (is_other_linear_weight(tensor)) others.add(tensor.bytes(), 0);
    }
  uint64_t count = 0;
  for (const auto& entry : by_dtype) count += entry.second.tensors;
  std::printf("other tensors: %llu\n", (unsigned long long)count);
  for (const auto& [dtype, tally] : by_dtype)
    std::printf("  %-42s %6llu tensors  %s\n", dtype.c_str(), (unsigned long long)tally.tensors,
                human_bytes(tally.logical_bytes).c_str());
  if (candidates.tensors > 0)
    std::printf("  of which %llu are expert weights (%s) that `moeq quantize` would make 4-bit\n",
                (unsigned long long)candidates.tensors, human_bytes(candidates.logical_bytes).c_str());
  if (others.tensors > 0)
    std::printf("  and %llu other linear weights (%s) that --all-linear adds\n",
                (unsigned long long)others.tensors, human_bytes(others.logical_bytes).c_str());
}

void print_tensor_list(const safetensors::Checkpoint& checkpoint, const QuantizedTensors& quantized) {
  std::printf("\n");
  for (const QuantizedTensor& tensor : quantized.tensors)
    std::printf("%-64s %-30s %-20s %s -> %s\n", tensor.base.c_str(), describe(tensor.state).c_str(),
                safetensors::shape_string(tensor.state.shape).c_str(),
                human_bytes(tensor.logical_bytes()).c_str(), human_bytes(tensor.stored_bytes()).c_str());
  for (const auto& file : checkpoint.files())
    for (const TensorInfo& tensor : file->tensors())
      if (quantized.member_keys.count(tensor.name) == 0)
        std::printf("%-64s %-30s %-20s %s\n", tensor.name.c_str(), safetensors::dtype_name(tensor.dtype),
                    safetensors::shape_string(tensor.shape).c_str(), human_bytes(tensor.bytes()).c_str());
}

}  // namespace

int run_inspect(const InspectOptions& options) {
  const safetensors::Checkpoint checkpoint(
      std::vector<std::filesystem::path>(options.inputs.begin(), options.inputs.end()));
  const QuantizedTensors quantized = find_quantized_tensors(checkpoint);
  uint64_t file_bytes = 0;
  for (const auto& file : checkpoint.files()) file_bytes += file->size_bytes();
  std::printf("%zu file%s, %zu tensors, %s on disk\n", checkpoint.files().size(),
              checkpoint.files().size() == 1 ? "" : "s", checkpoint.tensor_count(),
              human_bytes(file_bytes).c_str());
  Tally total;
  print_quantized(quantized, total);
  print_unquantized(checkpoint, quantized, total);
  std::printf("total: %s original -> %s stored\n", human_bytes(total.logical_bytes).c_str(),
              human_bytes(total.stored_bytes).c_str());
  if (options.list_tensors) print_tensor_list(checkpoint, quantized);
  return 0;
}

}  // namespace moeq::cli
