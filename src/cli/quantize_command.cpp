// quantize_checkpoint: one pass over the input in file order; each tensor is
// quantized or copied, then written by the writer thread while the next ones
// are read and quantized. Memory stays near the largest tensor plus two
// quantized forms (the quantizer lends out two results at a time).
#include "cli/quantize_command.hpp"

#include "cli/bnb_state.hpp"
#include "cli/hf_config.hpp"
#include "cli/interrupt.hpp"
#include "cli/output_plan.hpp"
#include "cli/progress.hpp"
#include "cli/qtensor_view.hpp"
#include "cli/quantizer.hpp"
#include "cli/write_queue.hpp"
#include "safetensors/error.hpp"
#include "safetensors/partial_file.hpp"
#include "safetensors/sharded_index.hpp"
#include "safetensors/writer.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

namespace moeq::cli {
namespace {

namespace fs = std::filesystem;
using safetensors::Error;
using safetensors::File;
using safetensors::TensorInfo;
using safetensors::TensorSpec;
using safetensors::Writer;

moeq_quant_config config_of(const QuantizeOptions& options) {
  if (options.format != "nf4" && options.format != "fp4")
    throw Error("--format: expected nf4 or fp4, got '" + options.format + "'");
  return moeq_quant_config{sizeof(moeq_quant_config),
                           options.format == "nf4" ? MOEQ_FORMAT_NF4 : MOEQ_FORMAT_FP4, options.blocksize,
                           options.double_quant ? 1 : 0};
}

QuantState state_of(const moeq_quant_config& config, const TensorInfo& tensor) {
  QuantState state;
  state.format = config.format;
  state.blocksize = config.blocksize;
  state.dtype = tensor.dtype;
  state.shape = tensor.shape;
  state.nested = config.nested == 1;
  return state;
}

// transformers refuses safetensors files whose metadata lacks a framework.
std::map<std::string, std::string> output_metadata(const OutputFile& file) {
  std::map<std::string, std::string> metadata = file.sources.front()->header().metadata;
  metadata.emplace("format", "pt");
  return metadata;
}

uint64_t quantized_output_bytes(const std::vector<TensorSpec>& specs) {
  uint64_t bytes = 0;
  for (const TensorSpec& spec : specs) {
    uint64_t count = 1;
    for (int64_t size : spec.shape) count *= static_cast<uint64_t>(size);
    bytes += count * safetensors::dtype_bytes(spec.dtype);
  }
  return bytes;
}

class CheckpointQuantizer {
 public:
  CheckpointQuantizer(const QuantizeOptions& options, const moeq_quant_config& config)
      : config_(config), selection_(options.selection), quantizer_(make_quantizer(options.device, config)) {}

  // Lays out one output file and opens its writer (header written, space reserved).
  std::unique_ptr<Writer> open(const OutputFile& file) {
    std::vector<TensorSpec> specs;
    for (const File* source : file.sources)
      for (const TensorInfo& tensor : source->tensors()) {
        if (!should_quantize(tensor, selection_)) {
          specs.push_back({tensor.name, tensor.dtype, tensor.shape});
          continue;
        }
        for (TensorSpec& spec :
             bnb_tensor_specs(tensor.name, state_of(config_, tensor), quantized_layout(config_, tensor)))
          specs.push_back(std::move(spec));
      }
    return std::make_unique<Writer>(file.path, std::move(specs), output_metadata(file));
  }

  // Queues every tensor of `file` for `writer`; the writes happen on `queue`'s
  // thread, which alone touches `progress` and `summary` until it is drained.
  void fill(const OutputFile& file, Writer& writer, WriteQueue& queue, Progress& progress,
            QuantizeSummary& summary) {
    for (const File* source : file.sources) {
      const std::vector<TensorInfo>& tensors = source->tensors();
      for (size_t i = 0; i < tensors.size(); ++i) {
        throw_if_interrupted();
        const TensorInfo& tensor = tensors[i];
        // Read ahead while this tensor is worked on: disk and CPU overlap.
        if (i + 1 < tensors.size()) source->will_need(tensors[i + 1]);
        if (should_quantize(tensor, selection_)) {
          const QuantizedResult result = quantizer_->quantize(*source, tensor);
          source->done_with(tensor);
          queue.post([this, &writer, &tensor, &progress, &summary, result] {
            write_quantized(writer, tensor, result->wait(), summary);
            summary.input_bytes += tensor.bytes();
            progress.tensor_done(tensor.bytes());
          });
        } else {
          queue.post([&writer, source, &tensor, &progress, &summary] {
            writer.write(tensor.name, source->data(tensor), tensor.bytes());
            source->done_with(tensor);
            ++summary.copied_tensors;
            summary.input_bytes += tensor.bytes();
            progress.tensor_done(tensor.bytes());
          });
        }
      }
    }
  }

 private:
  void write_quantized(Writer& writer, const TensorInfo& tensor, const QuantizedBytes& bytes,
                       QuantizeSummary& summary) const {
    QuantState state = state_of(config_, tensor);
    state.nested_offset = bytes.nested_offset;
    const BnbKeys keys = bnb_keys(tensor.name, state.format);
    const std::vector<float> quant_map = code_table(state.format);
    const std::string json = quant_state_json(state);
    writer.write(keys.packed, bytes.packed, bytes.layout.packed_bytes);
    writer.write(keys.absmax, bytes.absmax, absmax_bytes(bytes.layout));
    writer.write(keys.quant_map, quant_map.data(), quant_map.size() * sizeof(float));
    writer.write(keys.quant_state, json.data(), json.size());
    if (state.nested) {
      writer.write(keys.nested_absmax, bytes.nested_absmax, nested_absmax_bytes(bytes.layout));
      writer.write(keys.nested_quant_map, bytes.nested_code, nested_code_bytes(bytes.layout));
    }
    ++summary.quantized_tensors;
    summary.quantized_input_bytes += tensor.bytes();
    summary.quantized_output_bytes +=
        quantized_output_bytes(bnb_tensor_specs(tensor.name, state, bytes.layout));
  }

  moeq_quant_config config_;
  Selection selection_;
  std::unique_ptr<Quantizer> quantizer_;
};

void write_index(const std::vector<std::unique_ptr<Writer>>& writers, const fs::path& index_path) {
  std::map<std::string, std::string> weight_map;
  uint64_t total_size = 0;
  for (const auto& writer : writers)
    for (const TensorInfo& tensor : writer->header().tensors) {
      weight_map[tensor.name] = writer->path().filename().string();
      total_size += tensor.bytes();
    }
  safetensors::write_sharded_index(index_path, weight_map, total_size);
}

std::string read_text(const fs::path& path) {
  std::ifstream stream(path, std::ios::binary);
  if (!stream) throw Error(path.string() + ": cannot open");
  std::ostringstream text;
  text << stream.rdbuf();
  return text.str();
}

QuantizeSummary quantize_into(const QuantizeOptions& options, const moeq_quant_config& config,
                              const safetensors::Checkpoint& input, const OutputPlan& plan,
                              const std::string& hf_config) {
  CheckpointQuantizer quantizer(options, config);
  std::vector<std::unique_ptr<Writer>> writers;
  for (const OutputFile& file : plan.files) writers.push_back(quantizer.open(file));

  uint64_t total_bytes = 0;
  for (const auto& source : input.files())
    for (const TensorInfo& tensor : source->tensors()) total_bytes += tensor.bytes();
  Progress progress("quantize", input.tensor_count(), total_bytes, options.show_progress);
  QuantizeSummary summary;
  {
    // Declared after what its jobs use: on a failure it stops before they go away.
    WriteQueue queue;
    for (size_t i = 0; i < plan.files.size(); ++i)
      quantizer.fill(plan.files[i], *writers[i], queue, progress, summary);
    queue.drain();
  }
  summary.seconds = progress.finish();

  // Every file is complete before any appears under its name.
  for (const auto& writer : writers) {
    writer->commit();
    summary.output_file_bytes += writer->file_bytes();
    summary.written.push_back(writer->path().string());
  }
  if (!plan.index_path.empty()) {
    write_index(writers, plan.index_path);
    summary.written.push_back(plan.index_path.string());
  }
  if (!hf_config.empty()) {
    safetensors::write_file_atomically(plan.config_path, hf_config);
    summary.written.push_back(plan.config_path.string());
  }
  return summary;
}

}  // namespace

QuantizeSummary quantize_checkpoint(const QuantizeOptions& options) {
  std::vector<fs::path> inputs(options.inputs.begin(), options.inputs.end());
  const safetensors::Checkpoint input(inputs);
  const OutputPlan plan = plan_outputs(input, options.output);
  const moeq_quant_config config = config_of(options);
  // Read and checked before any work, so a bad config.json costs nothing.
  std::string hf_config;
  if (const fs::path input_config = find_input_config(inputs);
      !input_config.empty() && !plan.config_path.empty())
    hf_config = quantized_hf_config(read_text(input_config), input_config, input, config, options.selection);
  if (!plan.folder_to_create.empty()) fs::create_directories(plan.folder_to_create);
  try {
    return quantize_into(options, config, input, plan, hf_config);
  } catch (...) {
    std::error_code ignored;
    if (!plan.folder_to_create.empty()) fs::remove(plan.folder_to_create, ignored);  // only if left empty
    throw;
  }
}

int run_quantize(const QuantizeOptions& options) {
  stop_on_interrupt();
  const QuantizeSummary summary = quantize_checkpoint(options);
  std::printf(
      "quantized %llu tensors (%.3f GB -> %.3f GB, %.1f%%), copied %llu unchanged; %.3f GB read in %.2f s "
      "(%.2f GB/s)\n",
      (unsigned long long)summary.quantized_tensors, summary.quantized_input_bytes / 1e9,
      summary.quantized_output_bytes / 1e9,
      100.0 * summary.quantized_output_bytes / std::max<uint64_t>(summary.quantized_input_bytes, 1),
      (unsigned long long)summary.copied_tensors, summary.input_bytes / 1e9, summary.seconds,
      summary.input_bytes / 1e9 / std::max(summary.seconds, 1e-9));
  for (const std::string& path : summary.written) std::printf("wrote %s\n", path.c_str());
  if (summary.quantized_tensors == 0)
    std::fprintf(stderr, "note: no tensor matched the %s; the output is a copy of the input\n",
                 options.selection == Selection::Experts ? "expert-weight patterns (try --all-linear)"
                                                         : "expert or linear-weight patterns");
  return 0;
}

}  // namespace moeq::cli
