/* moeq.h — the stable C ABI of moeq: 4-bit (NF4/FP4, bitsandbytes layout)
 * Mixture-of-Experts weights and the per-expert GEMM with a fused LoRA adapter,
 * forward and backward, on CUDA GPUs and on the CPU.
 *
 * Reading guide
 *   1. Versions and build information.
 *   2. Status codes and the thread-local error message.
 *   3. Formats and the quantized tensor (moeq_qtensor).
 *   4. quantize / dequantize.
 *   5. The expert GEMM with LoRA: forward and backward.
 *   6. The gated activation between the projections (SwiGLU): forward and backward.
 *   7. Library-allocated tensors handed out as DLPack.
 *
 * Rules that hold for every function
 *   - Every function returns a moeq_status and never aborts; on failure
 *     moeq_last_error() names the argument and what was expected of it, and no
 *     output has been written (checks run before any kernel).
 *   - Tensors are borrowed DLTensor views (DLPack >= 1.0). All tensors of one call
 *     live on one device; a mismatch is an error, never a silent copy. Each one's
 *     first element (data + byte_offset) is aligned to the size of its dtype, and
 *     its sizes and strides reach no further than 2^63 bytes.
 *   - Any number of threads may call at once. On the CPU the same inputs give the
 *     same bytes run after run and at any OpenMP thread count (no reduction runs
 *     in an order that depends on timing).
 *   - `stream` is a cudaStream_t (NULL = the legacy default stream) for CUDA
 *     tensors and is ignored for CPU tensors. GPU calls never synchronise the
 *     host and can be captured in a CUDA graph when the caller passes a workspace.
 *   - Argument structs begin with `struct_size` (set it to sizeof the struct you
 *     compiled against) so the library can grow them without breaking callers.
 *   - Enumerations travel as int32_t; their values never change once released.
 */
#ifndef MOEQ_MOEQ_H
#define MOEQ_MOEQ_H

#include <stddef.h>
#include <stdint.h>

#include <dlpack/dlpack.h>

#if defined(_WIN32)
#  if defined(MOEQ_BUILDING_LIBRARY)
#    define MOEQ_API __declspec(dllexport)
#  else
#    define MOEQ_API __declspec(dllimport)
#  endif
#else
#  define MOEQ_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- 1. versions */

#define MOEQ_VERSION_MAJOR 0
#define MOEQ_VERSION_MINOR 1
#define MOEQ_VERSION_PATCH 0
/* MAJOR * 10000 + MINOR * 100 + PATCH, as moeq_version() returns it. */
#define MOEQ_VERSION_NUMBER \
  (MOEQ_VERSION_MAJOR * 10000 + MOEQ_VERSION_MINOR * 100 + MOEQ_VERSION_PATCH)

/* The version of the library actually loaded (compare with MOEQ_VERSION_NUMBER). */
MOEQ_API uint32_t moeq_version(void);
/* Human-readable: version, backends, CUDA runtime version, compiled GPU archs. */
MOEQ_API const char* moeq_build_info(void);
/* 1 when the library was built with CUDA and at least one GPU is visible. */
MOEQ_API int32_t moeq_cuda_available(void);

/* ------------------------------------------------------------ 2. status codes */

typedef int32_t moeq_status;

enum moeq_status_code {
  MOEQ_OK = 0,
  MOEQ_ERR_INVALID_ARGUMENT = 1, /* a NULL, a wrong shape/dtype/stride/value    */
  MOEQ_ERR_UNSUPPORTED = 2,      /* valid, but not supported by this build/path */
  MOEQ_ERR_NO_DEVICE = 3,        /* CUDA tensors but no usable GPU              */
  MOEQ_ERR_OUT_OF_MEMORY = 4,    /* an allocation the library made failed       */
  MOEQ_ERR_WORKSPACE_TOO_SMALL = 5, /* workspace_bytes below what the call needs */
  MOEQ_ERR_CUDA = 6,             /* the CUDA runtime reported an error          */
  MOEQ_ERR_INTERNAL = 7          /* a bug in moeq: please report it             */
};

/* "MOEQ_OK", "MOEQ_ERR_INVALID_ARGUMENT", ...; "MOEQ_UNKNOWN_STATUS" otherwise. */
MOEQ_API const char* moeq_status_name(moeq_status status);
/* The message of this thread's last failed call ("" if none). Valid until this
 * thread's next moeq call. */
MOEQ_API const char* moeq_last_error(void);

/* ------------------------------------------------ 3. formats and quantized tensors */

enum moeq_format {
  MOEQ_FORMAT_NF4 = 1, /* NormalFloat4, bitsandbytes "nf4" */
  MOEQ_FORMAT_FP4 = 2  /* bitsandbytes "fp4" (sign + 3-bit magnitude table) */
};

/* How a 3-D expert weight is stored (see moeq_expert_gemm_args). */
enum moeq_weight_layout {
  MOEQ_LAYOUT_EXPERT_OUT_IN = 0, /* [E, N, K]: Qwen3, GLM, Mixtral, DeepSeek */
  MOEQ_LAYOUT_EXPERT_IN_OUT = 1  /* [E, K, N]: gpt-oss                       */
};

#define MOEQ_MAX_DIMS 8
#define MOEQ_MIN_BLOCKSIZE 32
#define MOEQ_MAX_BLOCKSIZE 4096
#define MOEQ_NESTED_BLOCKSIZE 256 /* blocksize of double quantization */
#define MOEQ_NESTED_CODE_SIZE 256 /* entries of the signed 8-bit dynamic map */

typedef struct moeq_quant_config {
  uint32_t struct_size;
  int32_t format;      /* moeq_format */
  int32_t blocksize;   /* power of two in [32, 4096]; bitsandbytes' default is 64 */
  int32_t nested;      /* 1: double quantization (bitsandbytes compress_statistics) */
} moeq_quant_config;

/* What a caller allocates for a quantized tensor of `numel` elements. */
typedef struct moeq_quant_layout {
  uint32_t struct_size;
  int64_t numel;
  int64_t packed_bytes;        /* ceil(numel / 2) bytes of uint8               */
  int64_t absmax_count;        /* ceil(numel / blocksize) blocks               */
  DLDataType absmax_dtype;     /* float32, or uint8 when nested                */
  int64_t nested_absmax_count; /* ceil(absmax_count / 256) float32; 0 if plain */
  int64_t nested_code_count;   /* 256 float32 when nested; 0 if plain          */
  int64_t nested_offset_count; /* 1 float32 when nested; 0 if plain            */
  int64_t quantize_workspace_bytes; /* device scratch moeq_quantize needs (0 on CPU
                                       and for plain formats) */
} moeq_quant_layout;

/* Fill `out` for a tensor of logical shape `shape[ndim]` quantized with `config`. */
MOEQ_API moeq_status moeq_quantized_layout(const moeq_quant_config* config, int32_t ndim,
                                           const int64_t* shape, moeq_quant_layout* out);

/* A 4-bit tensor in the bitsandbytes layout, as borrowed views.
 *   packed        uint8 (any 1-byte storage dtype), contiguous, ceil(numel/2) bytes;
 *                 flat element 2j is the HIGH nibble of byte j.
 *   absmax        float32 [nblocks], or uint8 [nblocks] when nested.
 *   nested_absmax float32 [ceil(nblocks/256)]      (nested only; else data NULL)
 *   nested_code   float32 [256], the 8-bit map     (nested only; else data NULL)
 *   nested_offset float32 [1], the mean subtracted before the nested quantization
 *                 (nested only). It is a tensor, not a host float, so the GPU path
 *                 computes and reads it without synchronising the host.
 * For nested tensors absmax[i] = nested_code[q[i]] * nested_absmax[i/256] + offset. */
typedef struct moeq_qtensor {
  uint32_t struct_size;
  int32_t format;                /* moeq_format */
  int32_t blocksize;
  int32_t nested;                /* 0 or 1 */
  int32_t ndim;
  int64_t shape[MOEQ_MAX_DIMS];  /* logical shape, e.g. [E, N, K] */
  DLDataType dtype;              /* logical dtype: float32, float16 or bfloat16 */
  DLTensor packed;
  DLTensor absmax;
  DLTensor nested_absmax;
  DLTensor nested_code;
  DLTensor nested_offset;
} moeq_qtensor;

/* ---------------------------------------------------- 4. quantize / dequantize */

/* Quantize `input` (float32/float16/bfloat16, contiguous, any shape) into the
 * buffers `out` points at. The caller allocates them (moeq_quantized_layout) and
 * sets their DLTensor views; moeq fills them and sets format, blocksize, nested,
 * ndim, shape and dtype.
 * `workspace` (device memory, `workspace_bytes` >= layout.quantize_workspace_bytes)
 * is needed only for nested quantization on the GPU; with workspace NULL the
 * library takes it from the stream-ordered allocator.
 * Edge cases, identical on every backend: an all-zero block stores absmax 0 and
 * the code of +0.0; NaN elements store the code of +0.0 and do not enter absmax;
 * an infinite element makes absmax infinite. */
MOEQ_API moeq_status moeq_quantize(const DLTensor* input, const moeq_quant_config* config,
                                   moeq_qtensor* out, void* workspace, size_t workspace_bytes,
                                   void* stream);

/* Dequantize into `out` (float32/float16/bfloat16, contiguous, shape == q->shape):
 * out = dtype(code_value * absmax) computed in float32, round to nearest even. */
MOEQ_API moeq_status moeq_dequantize(const moeq_qtensor* q, DLTensor* out, void* stream);

/* -------------------------------------------- 5. the expert GEMM with LoRA */

/* For every expert e owning rows [group_end[e-1], group_end[e]) of x (group_end[-1]=0):
 *   y_e = x_e · W_eᵀ + lora_scale · (x_e · A_eᵀ) · B_eᵀ
 * Shapes (M rows, K input features, N output features, E experts, r LoRA rank):
 *   x         [M, K]  float32 | float16 | bfloat16, row stride may exceed K
 *   weight    4-bit, logical [E, N, K] (MOEQ_LAYOUT_EXPERT_OUT_IN) or
 *             [E, K, N] (MOEQ_LAYOUT_EXPERT_IN_OUT); blocks run over the flat tensor
 *   group_end [E]     int32 | int64, non-decreasing, last entry <= M; rows past the
 *             last entry are left untouched in y
 *   lora_a    [E, r, K] and lora_b [E, N, r], any strides (PEFT's lora_A.weight
 *             [r*E, K] is [E, r, K] contiguous; its lora_B.weight [N, r*E] is the
 *             view [E, N, r] with strides (1, r*E, E)); dtype float32 or x's dtype.
 *             Both NULL: no LoRA.
 *   y         [M, N]  x's dtype; must not overlap any input.
 *   x_lora_a  optional output [M, r] (float32 or x's dtype): x_e · A_eᵀ, which the
 *             backward can take instead of recomputing it.
 * Accumulation is float32 on every backend. */
typedef struct moeq_expert_gemm_args {
  uint32_t struct_size;
  const DLTensor* x;
  const moeq_qtensor* weight;
  int32_t weight_layout;        /* moeq_weight_layout */
  const DLTensor* group_end;
  const DLTensor* lora_a;       /* NULL: no LoRA */
  const DLTensor* lora_b;
  float lora_scale;
  DLTensor* y;
  DLTensor* x_lora_a;           /* optional output, NULL to skip */
  void* workspace;              /* device scratch; NULL: the library allocates */
  size_t workspace_bytes;
} moeq_expert_gemm_args;

/* Backward of moeq_expert_gemm_lora, for every expert e:
 *   grad_x_e      = dY_e · W_e + s · (dY_e · B_e) · A_e
 *   grad_lora_a_e = s · (dY_e · B_e)ᵀ · x_e
 *   grad_lora_b_e = s · dY_eᵀ · (x_e · A_eᵀ)
 * Each output is optional (NULL to skip) and is overwritten, not accumulated;
 * experts without rows get zero LoRA gradients. `x` is needed for grad_lora_a, and
 * for grad_lora_b unless `x_lora_a` (from the forward) is given. Gradient dtypes:
 * grad_x as x; grad_lora_a / grad_lora_b as lora_a / lora_b (any strides). */
typedef struct moeq_expert_gemm_grad_args {
  uint32_t struct_size;
  const DLTensor* x;            /* [M, K] (may be NULL if only grad_x is wanted) */
  const moeq_qtensor* weight;
  int32_t weight_layout;
  const DLTensor* group_end;
  const DLTensor* lora_a;
  const DLTensor* lora_b;
  float lora_scale;
  const DLTensor* grad_y;       /* [M, N], x's dtype */
  const DLTensor* x_lora_a;     /* optional input [M, r] saved by the forward */
  DLTensor* grad_x;             /* optional [M, K] */
  DLTensor* grad_lora_a;        /* optional [E, r, K] */
  DLTensor* grad_lora_b;        /* optional [E, N, r] */
  void* workspace;
  size_t workspace_bytes;
} moeq_expert_gemm_grad_args;

MOEQ_API moeq_status moeq_expert_gemm_lora(const moeq_expert_gemm_args* args, void* stream);
MOEQ_API moeq_status moeq_expert_gemm_lora_backward(const moeq_expert_gemm_grad_args* args,
                                                    void* stream);

/* Workspace (bytes) the GPU path of a call needs with these arguments; 0 on the CPU. */
MOEQ_API moeq_status moeq_expert_gemm_workspace_size(const moeq_expert_gemm_args* args,
                                                     size_t* bytes);
MOEQ_API moeq_status moeq_expert_gemm_grad_workspace_size(
    const moeq_expert_gemm_grad_args* args, size_t* bytes);

/* ------------------------------------- 6. the gated activation (SwiGLU) */

/* Where gate and up lie in the gate_up projection's output [M, 2I]. */
enum moeq_gate_layout {
  MOEQ_GATE_UP_HALVES = 0,     /* gate = columns [0, I), up = [I, 2I): Qwen3, GLM,
                                  Mixtral, DeepSeek (transformers' chunk(2, -1)) */
  MOEQ_GATE_UP_INTERLEAVED = 1 /* gate = even columns, up = odd ones: gpt-oss     */
};

/* For each row m and i < I, with g = min(gate, limit) and u = clamp(up, -limit, limit):
 *   out[m, i] = (u + up_offset) * g * sigmoid(alpha * g)
 * alpha 1, limit INFINITY, up_offset 0 is silu(gate) * up (Qwen3, GLM, Mixtral,
 * DeepSeek); gpt-oss uses alpha 1.702, limit 7, up_offset 1, interleaved.
 * A NULL config means that SwiGLU over halves. */
typedef struct moeq_swiglu_config {
  uint32_t struct_size;
  int32_t layout;  /* moeq_gate_layout */
  float alpha;     /* finite */
  float limit;     /* > 0; INFINITY: no clamp */
  float up_offset; /* finite */
} moeq_swiglu_config;

/* gate_up [M, 2I] and out [M, I]: one dtype (float32, float16 or bfloat16), rows
 * padded or not, unit stride along the last dim; out must not overlap gate_up.
 * One pass over memory, computed in float32 and rounded once to out's dtype. A NaN
 * gate or up gives a NaN output (the clamps do not turn it into a bound). */
MOEQ_API moeq_status moeq_swiglu(const moeq_swiglu_config* config, const DLTensor* gate_up,
                                 DLTensor* out, void* stream);
/* The gradient at gate_up given grad_out = dL/d(out) [M, I], into grad_gate_up
 * [M, 2I] (overwritten; same layout as gate_up; must overlap neither input). Where
 * a clamp bites, its input's gradient is 0 (as torch.clamp's backward, bounds
 * inclusive). Same dtype and rules as moeq_swiglu. */
MOEQ_API moeq_status moeq_swiglu_backward(const moeq_swiglu_config* config,
                                          const DLTensor* gate_up, const DLTensor* grad_out,
                                          DLTensor* grad_gate_up, void* stream);

/* --------------------------------------- 7. tensors allocated by the library */

/* Allocate an uninitialised, contiguous tensor on `device` (kDLCPU or kDLCUDA) and
 * hand it out as a DLPack >= 1.0 managed tensor. Free it with its deleter or with
 * moeq_tensor_free. */
MOEQ_API moeq_status moeq_tensor_empty(int32_t ndim, const int64_t* shape, DLDataType dtype,
                                       DLDevice device, DLManagedTensorVersioned** out);
/* Calls the tensor's deleter. NULL is allowed and does nothing. */
MOEQ_API void moeq_tensor_free(DLManagedTensorVersioned* tensor);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOEQ_MOEQ_H */
