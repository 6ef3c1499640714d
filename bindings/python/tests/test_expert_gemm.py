"""expert_gemm_lora forward and backward against a NumPy float64 reference."""

import numpy as np
import pytest

import moeq
from conftest import NUMPY_DTYPES, decode_with_numpy, random_array, to_numpy

EXPERTS, OUT_FEATURES, IN_FEATURES, RANK = 4, 96, 128, 8
# Expert 2 owns no rows; the last row belongs to no expert.
GROUP_END = [5, 12, 12, 19]
ROWS = 20
TOLERANCE = {"float32": 1e-4, "float16": 4e-3, "bfloat16": 2e-2}


def make_problem(layout, dtype, with_lora=True, seed=0):
    shape = (EXPERTS, OUT_FEATURES, IN_FEATURES) if layout == "out_in" else \
        (EXPERTS, IN_FEATURES, OUT_FEATURES)
    weight = moeq.quantize(random_array(shape, "float32", seed) * 0.1, blocksize=32)
    dense = decode_with_numpy(weight).astype(np.float64)
    if layout == "in_out":
        dense = dense.transpose(0, 2, 1)  # [E, N, K] from here on
    problem = {"x": random_array((ROWS, IN_FEATURES), dtype, seed + 1), "weight": weight,
               "dense": dense, "group_end": np.array(GROUP_END, dtype=np.int64),
               "lora_a": None, "lora_b": None}
    if with_lora:
        problem["lora_a"] = random_array((EXPERTS, RANK, IN_FEATURES), "float32", seed + 2) * 0.1
        problem["lora_b"] = random_array((EXPERTS, OUT_FEATURES, RANK), "float32", seed + 3) * 0.1
    return problem


def expert_rows():
    starts = [0] + GROUP_END[:-1]
    return [slice(start, end) for start, end in zip(starts, GROUP_END)]


def reference_forward(problem, scale):
    x = problem["x"].astype(np.float64)
    y = np.zeros((ROWS, OUT_FEATURES))
    for e, rows in enumerate(expert_rows()):
        y[rows] = x[rows] @ problem["dense"][e].T
        if problem["lora_a"] is not None:
            y[rows] += scale * (x[rows] @ problem["lora_a"][e].T) @ problem["lora_b"][e].T
    return y


def reference_backward(problem, grad_y, scale):
    x, dy = problem["x"].astype(np.float64), grad_y.astype(np.float64)
    a, b = problem["lora_a"].astype(np.float64), problem["lora_b"].astype(np.float64)
    grad_x = np.zeros((ROWS, IN_FEATURES))
    grad_a, grad_b = np.zeros_like(a), np.zeros_like(b)
    for e, rows in enumerate(expert_rows()):
        dy_b = dy[rows] @ b[e]
        grad_x[rows] = dy[rows] @ problem["dense"][e] + scale * dy_b @ a[e]
        grad_a[e] = scale * dy_b.T @ x[rows]
        grad_b[e] = scale * dy[rows].T @ (x[rows] @ a[e].T)
    return grad_x, grad_a, grad_b


def assert_close(actual, expected, dtype):
    actual = np.asarray(actual, dtype=np.float64)
    bound = TOLERANCE[dtype] * (np.abs(expected).max(initial=0) + 1e-3)
    assert np.abs(actual - expected).max(initial=0) <= bound


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("layout", ["out_in", "in_out"])
@pytest.mark.parametrize("with_lora", [True, False], ids=["lora", "no_lora"])
def test_forward_matches_the_float64_reference(layout, dtype, with_lora):
    problem = make_problem(layout, dtype, with_lora)
    out = np.full((ROWS, OUT_FEATURES), 7, dtype=NUMPY_DTYPES[dtype])
    moeq.expert_gemm_lora(problem["x"], problem["weight"], problem["group_end"],
                          problem["lora_a"], problem["lora_b"], lora_scale=0.5, layout=layout,
                          out=out)
    expected = reference_forward(problem, 0.5)
    assert_close(out[:19], expected[:19], dtype)
    assert np.all(out[19] == 7), "rows past group_end[-1] are left untouched"


def test_forward_allocates_y_and_returns_x_times_lora_a():
    problem = make_problem("out_in", "float32")
    group_end = problem["group_end"].astype(np.int32)
    y, x_lora_a = moeq.expert_gemm_lora(problem["x"], problem["weight"], group_end,
                                        problem["lora_a"], problem["lora_b"],
                                        return_x_lora_a=True)
    assert y.shape == (ROWS, OUT_FEATURES) and y.dtype == "float32"
    assert_close(to_numpy(y)[:19], reference_forward(problem, 1.0)[:19], "float32")
    x = problem["x"].astype(np.float64)
    for e, rows in enumerate(expert_rows()):
        assert_close(to_numpy(x_lora_a)[rows], x[rows] @ problem["lora_a"][e].T, "float32")


def test_lora_b_in_peft_layout_is_read_through_its_strides():
    problem = make_problem("out_in", "float32")
    # PEFT's lora_B.weight is [N, r*E] with the expert fastest: the view [E, N, r] has
    # strides (1, r*E, E) elements.
    peft_weight = np.ascontiguousarray(problem["lora_b"].transpose(1, 2, 0)).reshape(
        OUT_FEATURES, RANK * EXPERTS)
    strided = np.lib.stride_tricks.as_strided(
        peft_weight, shape=(EXPERTS, OUT_FEATURES, RANK),
        strides=np.array([1, RANK * EXPERTS, EXPERTS]) * 4)
    y = moeq.expert_gemm_lora(problem["x"], problem["weight"], problem["group_end"],
                              problem["lora_a"], strided)
    assert_close(to_numpy(y)[:19], reference_forward(problem, 1.0)[:19], "float32")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("layout", ["out_in", "in_out"])
@pytest.mark.parametrize("saved_x_lora_a", [False, True], ids=["recomputed", "saved"])
def test_backward_matches_the_float64_reference(layout, dtype, saved_x_lora_a):
    problem = make_problem(layout, dtype)
    grad_y = random_array((ROWS, OUT_FEATURES), dtype, seed=9)
    x_lora_a = None
    if saved_x_lora_a:
        _, x_lora_a = moeq.expert_gemm_lora(problem["x"], problem["weight"], problem["group_end"],
                                            problem["lora_a"], problem["lora_b"], 0.25,
                                            layout=layout, return_x_lora_a=True)
    grads = moeq.expert_gemm_lora_backward(grad_y, problem["x"], problem["weight"],
                                           problem["group_end"], problem["lora_a"],
                                           problem["lora_b"], 0.25, layout=layout,
                                           x_lora_a=x_lora_a)
    grad_x, grad_a, grad_b = reference_backward(problem, grad_y, 0.25)
    assert_close(to_numpy(grads.x)[:19], grad_x[:19], dtype)
    assert_close(to_numpy(grads.lora_a), grad_a, dtype)
    assert_close(to_numpy(grads.lora_b), grad_b, dtype)
    assert np.all(to_numpy(grads.lora_a)[2] == 0), "an expert without rows gets zero gradients"


def test_backward_computes_only_what_is_asked_into_the_given_tensors():
    problem = make_problem("out_in", "float32")
    grad_y = random_array((ROWS, OUT_FEATURES), "float32", seed=9)
    grad_b = np.zeros((OUT_FEATURES, RANK, EXPERTS), dtype=np.float32).transpose(2, 0, 1)
    grads = moeq.expert_gemm_lora_backward(grad_y, problem["x"], problem["weight"],
                                           problem["group_end"], problem["lora_a"],
                                           problem["lora_b"], compute=["lora_b"],
                                           out={"lora_b": grad_b})
    assert grads.x is None and grads.lora_a is None and grads.lora_b is grad_b
    assert_close(grad_b, reference_backward(problem, grad_y, 1.0)[2], "float32")
