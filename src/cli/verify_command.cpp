// verify: each 4-bit tensor dequantized chunk by chunk and compared with its
// original; every other tensor compared byte for byte.
#include "cli/verify_command.hpp"

#include "cli/chunk_dequantizer.hpp"
#include "cli/progress.hpp"
#include "cli/quantized_tensors.hpp"
#include "cli/scratch_buffer.hpp"

#include <cstdio>
#include <cstring>

namespace moeq::cli {
namespace {

using safetensors::Checkpoint;
using safetensors::TensorInfo;
using safetensors::TensorRef;

std::vector<std::filesystem::path> paths(const std::vector<std::string>& names) {
  return std::vector<std::filesystem::path>(names.begin(), names.end());
}

std::string short_format(const QuantState& state) {
  return std::string(format_name(state.format)) + " b" + std::to_string(state.blocksize) +
         (state.nested ? " dq" : "");
}

ErrorStats compare(const QuantizedTensor& tensor, const TensorRef& original,
                   ScratchBuffer& aligned_original) {
  ChunkDequantizer dequantizer(tensor);
  const double half_step = half_code_step(code_table(tensor.state.format).data());
  const int64_t element_bytes = safetensors::dtype_bytes(original.info->dtype);
  const uint8_t* original_bytes = original.file->data(*original.info);
  ErrorStats stats;
  for (int64_t block = 0; block < dequantizer.block_count(); block += dequantizer.blocks_per_chunk()) {
    const DequantizedChunk chunk = dequantizer.dequantize(block);
    const uint8_t* values = original_bytes + chunk.first_element * element_bytes;
    // Another writer may have left the original unaligned.
    if (reinterpret_cast<uintptr_t>(values) % element_bytes != 0) {
      uint8_t* copy = aligned_original.get(chunk.element_count * element_bytes);
      std::memcpy(copy, values, chunk.element_count * element_bytes);
      values = copy;
    }
    accumulate_errors(values, original.info->dtype, chunk.values, chunk.block_scales, chunk.element_count,
                      tensor.state.blocksize, half_step, stats);
  }
  return stats;
}

std::string mismatch(const QuantizedTensor& tensor, const TensorInfo& original) {
  if (original.dtype != tensor.state.dtype || original.shape != tensor.state.shape)
    return std::string("'") + tensor.base + "': the original is " + safetensors::dtype_name(original.dtype) +
           " " + safetensors::shape_string(original.shape) + ", the 4-bit tensor says " +
           safetensors::torch_dtype_name(tensor.state.dtype) + " " +
           safetensors::shape_string(tensor.state.shape);
  return "";
}

void verify_quantized(const Checkpoint& original, const QuantizedTensors& quantized, Progress& progress,
                      VerifyResult& result) {
  ScratchBuffer aligned_original;
  for (const QuantizedTensor& tensor : quantized.tensors) {
    const TensorRef* source = original.find(tensor.base);
    const std::string problem = source == nullptr ? "'" + tensor.base + "': not in the original checkpoint"
                                                  : mismatch(tensor, *source->info);
    if (!problem.empty()) {
      result.problems.push_back(problem);
      continue;
    }
    const ErrorStats errors = compare(tensor, *source, aligned_original);
    source->file->done_with(*source->info);
    result.tensors.push_back(TensorReport{tensor.base, short_format(tensor.state), errors});
    ++result.quantized_tensors;
    if (errors.within_bound()) ++result.within_bound;
    else result.problems.push_back("'" + tensor.base + "': errors above the 4-bit bound");
    progress.tensor_done(source->info->bytes());
  }
}

void verify_copied(const Checkpoint& original, const Checkpoint& quantized_checkpoint,
                   const QuantizedTensors& quantized, Progress& progress, VerifyResult& result) {
  for (const auto& file : quantized_checkpoint.files())
    for (const TensorInfo& tensor : file->tensors()) {
      if (quantized.member_keys.count(tensor.name) != 0) continue;
      const TensorRef* source = original.find(tensor.name);
      if (source == nullptr) {
        result.problems.push_back("'" + tensor.name + "': not in the original checkpoint");
        continue;
      }
      const TensorInfo& info = *source->info;
      if (info.dtype != tensor.dtype || info.shape != tensor.shape ||
          std::memcmp(source->file->data(info), file->data(tensor), tensor.bytes()) != 0)
        result.problems.push_back("'" + tensor.name + "': differs from the original");
      else ++result.copied_identical;
      source->file->done_with(info);
      file->done_with(tensor);
      progress.tensor_done(tensor.bytes());
    }
  for (const auto& file : original.files())
    for (const TensorInfo& tensor : file->tensors())
      if (quantized_checkpoint.find(tensor.name) == nullptr)
        result.problems.push_back("'" + tensor.name + "': missing from the quantized checkpoint");
}

}  // namespace

VerifyResult verify_checkpoint(const VerifyOptions& options) {
  const Checkpoint original(paths(options.original));
  const Checkpoint quantized_checkpoint(paths(options.quantized));
  const QuantizedTensors quantized = find_quantized_tensors(quantized_checkpoint);
  uint64_t total_bytes = 0;
  for (const auto& file : original.files())
    for (const TensorInfo& tensor : file->tensors()) total_bytes += tensor.bytes();
  Progress progress("verify", original.tensor_count(), total_bytes, options.show_progress);
  VerifyResult result;
  verify_quantized(original, quantized, progress, result);
  verify_copied(original, quantized_checkpoint, quantized, progress, result);
  progress.finish();
  return result;
}

int run_verify(const VerifyOptions& options) {
  const VerifyResult result = verify_checkpoint(options);
  std::printf("%-60s %-11s %11s %11s %10s %11s\n", "4-bit tensor", "format", "mean|err|", "max|err|",
              "rel.err", "err/bound");
  for (const TensorReport& report : result.tensors) {
    const ErrorStats& errors = report.errors;
    std::printf("%-60s %-11s %11.3e %11.3e %10.3e %8.3f %s", report.name.c_str(), report.format.c_str(),
                errors.mean_abs_error(), errors.max_abs_error, errors.relative_error(),
                errors.worst_bound_ratio, errors.within_bound() ? "ok" : "FAIL");
    if (errors.non_finite > 0) std::printf(" (%lld non-finite values skipped)", (long long)errors.non_finite);
    std::printf("\n");
  }
  std::printf(
      "%zu of %zu 4-bit tensors within the 4-bit error bound; %zu other tensors identical to the original\n",
      result.within_bound, result.quantized_tensors, result.copied_identical);
  for (const std::string& problem : result.problems) std::printf("problem: %s\n", problem.c_str());
  std::printf("%s\n", result.problems.empty() ? "verify: OK" : "verify: FAILED");
  return result.problems.empty() ? 0 : 1;
}

}  // namespace moeq::cli
