"""moeq with PyTorch: DLPack interop, the autograd Function, MoeqExperts and PEFT LoRA.
Runs on the CPU, and on the GPU too where one is visible to torch and moeq."""

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed: PyTorch tests skipped")

import moeq  # noqa: E402
import moeq.torch  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() and moeq.cuda_available() else [])


def dequantized(q):
    return torch.from_dlpack(moeq.dequantize(q, dtype="float32")).double()


@pytest.mark.parametrize("device", DEVICES)
def test_torch_tensors_go_in_and_out_without_a_copy(device):
    weight = torch.randn(4, 64, 64, dtype=torch.bfloat16, device=device)
    assert moeq.from_dlpack(weight).data_ptr == weight.data_ptr()
    q = moeq.quantize(weight)
    restored = moeq.dequantize(q)
    as_torch = torch.from_dlpack(restored)
    assert as_torch.data_ptr() == restored.data_ptr and as_torch.dtype == torch.bfloat16
    out = torch.empty_like(weight)
    assert moeq.dequantize(q, out=out) is out and torch.equal(out, as_torch)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["out_in", "in_out"])
def test_autograd_function_matches_dense_float64(device, layout):
    experts, n, k, r = 3, 64, 128, 4
    shape = (experts, n, k) if layout == "out_in" else (experts, k, n)
    q = moeq.quantize(torch.randn(shape, device=device) * 0.05)
    dense = dequantized(q) if layout == "out_in" else dequantized(q).transpose(1, 2)
    x = torch.randn(10, k, device=device, requires_grad=True)
    lora_a = (torch.randn(experts, r, k, device=device) * 0.1).requires_grad_()
    lora_b = (torch.randn(experts, n, r, device=device) * 0.1).requires_grad_()
    group_end = torch.tensor([4, 4, 10], device=device)
    y = moeq.torch.expert_gemm_lora(x, q, group_end, lora_a, lora_b, 0.5, layout)
    grad_y = torch.randn_like(y)
    y.backward(grad_y)

    x64, a64, b64 = (t.detach().double().requires_grad_() for t in (x, lora_a, lora_b))
    rows = [slice(0, 4), slice(4, 4), slice(4, 10)]
    ref = torch.cat([x64[s] @ dense[e].T + 0.5 * (x64[s] @ a64[e].T) @ b64[e].T
                     for e, s in enumerate(rows)])
    ref.backward(grad_y.double())
    for actual, expected in ((y, ref), (x.grad, x64.grad), (lora_a.grad, a64.grad),
                             (lora_b.grad, b64.grad)):
        torch.testing.assert_close(actual.double(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif("cuda" not in DEVICES, reason="no CUDA GPU visible to torch and moeq")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("nested", [False, True], ids=["plain", "nested"])
def test_gpu_dequantize_equals_cpu_dequantize_of_the_same_bytes(dtype, nested):
    q = moeq.quantize(torch.randn(4, 128, 64, dtype=dtype, device="cuda"), nested=nested)
    on_host = moeq.QTensor(format=q.format, blocksize=q.blocksize, shape=q.shape, dtype=q.dtype,
                           **{name: moeq.from_dlpack(torch.from_dlpack(buffer).cpu())
                              for name, buffer in q.buffers.items()})
    gpu = torch.from_dlpack(moeq.dequantize(q)).cpu()
    assert torch.equal(gpu, torch.from_dlpack(moeq.dequantize(on_host)))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("params", [{}, {"layout": "interleaved", "alpha": 1.702, "limit": 7.0, "up_offset": 1.0}],
                         ids=["swiglu", "gpt-oss"])
def test_swiglu_autograd_matches_torch_autograd_in_float64(device, params):
    gate_up = (torch.randn(33, 2 * 24, device=device) * 5).requires_grad_()
    layout, alpha = params.get("layout", "halves"), params.get("alpha", 1.0)
    limit, offset = params.get("limit", float("inf")), params.get("up_offset", 0.0)

    def reference(x):
        gate, up = (x[:, 0::2], x[:, 1::2]) if layout == "interleaved" else x.chunk(2, dim=-1)
        gate, up = gate.clamp(max=limit), up.clamp(min=-limit, max=limit)
        return (up + offset) * gate * torch.sigmoid(alpha * gate)

    grad = torch.randn(33, 24, device=device)
    out = moeq.torch.swiglu(gate_up, **params)
    (moeq_grad,) = torch.autograd.grad(out, gate_up, grad)
    double = gate_up.detach().double().requires_grad_()
    expected = reference(double)
    (expected_grad,) = torch.autograd.grad(expected, double, grad.double())
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(moeq_grad.double(), expected_grad, rtol=1e-5, atol=1e-6)


def test_swiglu_autograd_takes_a_transposed_view():
    base = torch.randn(16, 6)
    gate_up = base.t().requires_grad_()  # [6, 16] with column stride 6
    out = moeq.torch.swiglu(gate_up)
    gate, up = gate_up.detach().chunk(2, dim=-1)
    torch.testing.assert_close(out, torch.nn.functional.silu(gate) * up, rtol=1e-5, atol=1e-6)
    out.sum().backward()
    assert gate_up.grad is not None and gate_up.grad.shape == gate_up.shape
