// config.json of a Hugging Face checkpoint, given the quantization_config that
// tells transformers (through bitsandbytes) how `moeq quantize` stored the weights.
#pragma once

#include "cli/tensor_selection.hpp"
#include "safetensors/checkpoint.hpp"

#include <moeq/moeq.h>

#include <filesystem>
#include <string>
#include <vector>

namespace moeq::cli {

// The config.json in the folder the inputs name, or that holds the index or the
// .safetensors files named, when all inputs are in one folder and it has one;
// empty otherwise.
std::filesystem::path find_input_config(const std::vector<std::filesystem::path>& inputs);

// The text of the output's config.json: the input's `config_text` with a
// "quantization_config" as transformers' BitsAndBytesConfig writes it (4-bit
// format, double quantization, compute dtype = the quantized weights' dtype,
// and as llm_int8_skip_modules every linear layer left unquantized, so
// transformers keeps them as they are), plus bnb_4bit_blocksize and
// moeq_quantized_parameters; the input's text unchanged when `selection`
// quantizes nothing. Throws safetensors::Error, naming `config_path`, for text
// that is not a JSON object or already has a quantization_config.
std::string quantized_hf_config(const std::string& config_text, const std::filesystem::path& config_path,
                                const safetensors::Checkpoint& checkpoint, const moeq_quant_config& config,
                                Selection selection);

}  // namespace moeq::cli
