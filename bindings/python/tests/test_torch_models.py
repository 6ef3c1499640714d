"""MoeqExperts in transformers v5 MoE models, and PEFT LoRA (target_parameters) through it,
against the same models on dequantized (bitsandbytes-style) dense weights."""

import copy

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed: PyTorch tests skipped")
transformers = pytest.importorskip("transformers", reason="transformers is not installed")

import moeq  # noqa: E402
import moeq.torch  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() and moeq.cuda_available() else "cpu"
LORA_TARGETS = ["gate_up_proj", "down_proj"]


# Each builder takes config overrides (the end-to-end training test builds larger ones).
def qwen3_moe(**sizes):
    config = transformers.Qwen3MoeConfig(**{
        "vocab_size": 128, "hidden_size": 128, "intermediate_size": 256,
        "moe_intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 32, "num_experts": 8, "num_experts_per_tok": 2,
        "decoder_sparse_step": 1, **sizes})
    return transformers.Qwen3MoeForCausalLM(config)


def gpt_oss(**sizes):
    layers = sizes.get("num_hidden_layers", 2)
    config = transformers.GptOssConfig(**{
        "vocab_size": 128, "hidden_size": 128, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32,
        "num_local_experts": 8, "num_experts_per_tok": 2,
        "layer_types": ["full_attention"] * layers, **sizes})
    return transformers.GptOssForCausalLM(config)


def glm4_moe_lite(**sizes):
    config = transformers.Glm4MoeLiteConfig(**{
        "vocab_size": 128, "hidden_size": 128, "intermediate_size": 256,
        "moe_intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 4, "n_routed_experts": 8, "n_shared_experts": 1,
        "num_experts_per_tok": 2, "kv_lora_rank": 32, "q_lora_rank": 48,
        "qk_rope_head_dim": 16, "qk_nope_head_dim": 32, "v_head_dim": 32, **sizes})
    return transformers.Glm4MoeLiteForCausalLM(config)


MODELS = {"qwen3_moe": qwen3_moe, "gpt_oss": gpt_oss, "glm4_moe_lite": glm4_moe_lite}


def quantized_and_reference(build):
    """A quantized model, and a copy whose dense experts hold the dequantized weights."""
    torch.manual_seed(0)
    model = build().to(DEVICE)
    reference = copy.deepcopy(model)
    moeq.torch.quantize_experts(model)
    quantized = {name: module for name, module in model.named_modules()
                 if isinstance(module, moeq.torch.MoeqExperts)}
    for name, module in reference.named_modules():
        if name in quantized:
            for projection in LORA_TARGETS:
                restored = torch.from_dlpack(moeq.dequantize(quantized[name].qtensor(projection)))
                getattr(module, projection).data.copy_(restored)
    return model, reference


def tokens():
    return torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(1)).to(DEVICE)


@pytest.mark.parametrize("name", MODELS)
def test_quantized_experts_match_dense_experts_on_dequantized_weights(name):
    model, reference = quantized_and_reference(MODELS[name])
    assert any(isinstance(m, moeq.torch.MoeqExperts) for m in model.modules())
    with torch.no_grad():
        torch.testing.assert_close(model(tokens()).logits, reference(tokens()).logits,
                                   rtol=2e-3, atol=2e-3)


FUSED_GATES = {"qwen3_moe": {"layout": "halves"}, "glm4_moe_lite": {"layout": "halves"},
               "gpt_oss": {"layout": "interleaved", "alpha": 1.702, "limit": 7.0, "up_offset": 1.0}}


@pytest.mark.parametrize("name", MODELS)
def test_each_models_activation_runs_as_moeqs_fused_swiglu(name):
    model, _ = quantized_and_reference(MODELS[name])
    experts = [m for m in model.modules() if isinstance(m, moeq.torch.MoeqExperts)]
    assert experts
    for module in experts:
        fused = dict(module._fused_gate or {})
        expected = FUSED_GATES[name]
        assert fused.keys() == expected.keys()
        for key, value in expected.items():
            assert fused[key] == pytest.approx(value) if isinstance(value, float) else fused[key] == value


def test_casting_a_quantized_model_leaves_its_4bit_statistics_alone():
    model, reference = quantized_and_reference(qwen3_moe)
    model.to(torch.bfloat16), reference.to(torch.bfloat16)
    experts = [m for m in model.modules() if isinstance(m, moeq.torch.MoeqExperts)]
    assert {b.dtype for m in experts for b in m.buffers()} == {torch.uint8, torch.float32}
    with torch.no_grad():
        torch.testing.assert_close(model(tokens()).logits, reference(tokens()).logits,
                                   rtol=3e-2, atol=3e-2)


def test_expert_weight_memory_is_under_30_percent_of_bf16():
    model = qwen3_moe().to(DEVICE, torch.bfloat16)
    dense_bytes = sum(p.numel() * 2 for n, p in model.named_parameters() if n.endswith(tuple(LORA_TARGETS)))
    moeq.torch.quantize_experts(model, double_quant=True)
    quantized_bytes = sum(b.numel() * b.element_size() for n, b in model.named_buffers()
                          if "_proj_" in n)
    assert quantized_bytes <= 0.30 * dense_bytes


@pytest.mark.parametrize("name", MODELS)
def test_peft_lora_on_quantized_experts_matches_peft_on_dense_experts(name):
    peft = pytest.importorskip("peft", reason="peft is not installed")
    model, reference = quantized_and_reference(MODELS[name])
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=[], target_parameters=LORA_TARGETS)
    model, reference = peft.get_peft_model(model, config), peft.get_peft_model(reference, config)
    reference_parameters = dict(reference.named_parameters())
    with torch.no_grad():  # the same adapters in both, with a non-zero B so that they matter
        for parameter_name, parameter in model.named_parameters():
            if "lora_B" in parameter_name:
                parameter.normal_(0, 0.05)
            if "lora_" in parameter_name:
                reference_parameters[parameter_name].copy_(parameter)

    logits = model(tokens()).logits
    torch.testing.assert_close(logits, reference(tokens()).logits, rtol=2e-3, atol=2e-3)
    logits.float().pow(2).mean().backward()
    reference(tokens()).logits.float().pow(2).mean().backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert grads and all(g is not None for g in grads.values())
    for n, p in reference.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(grads[n], p.grad, rtol=2e-2, atol=1e-4)


@pytest.mark.parametrize("name", MODELS)
def test_moeq_reads_peft_factors_as_peft_get_delta_weight_defines_them(name):
    peft = pytest.importorskip("peft", reason="peft is not installed")
    model, _ = quantized_and_reference(MODELS[name])
    model = peft.get_peft_model(model, peft.LoraConfig(r=4, target_modules=[],
                                                       target_parameters=["down_proj"]))
    wrapper = next(m for m in model.modules() if getattr(m, "parameter_name", None) == "down_proj")
    torch.nn.init.normal_(wrapper.lora_B["default"].weight)
    experts, lora = moeq.torch._peft.active_lora(wrapper)
    lora_a, lora_b, scale, swapped = lora["down_proj"]
    views = moeq.torch._peft.peft_lora_views(experts.layout, experts.num_experts, swapped)
    moeq_a, moeq_b = views(lora_a.detach(), lora_b.detach())
    delta = scale * (moeq_b.double() @ moeq_a.double())  # [E, N, K]
    if experts.layout == "in_out":
        delta = delta.transpose(1, 2)
    wrapper.get_param = lambda: torch.empty(0, dtype=torch.float64, device=DEVICE)
    torch.testing.assert_close(delta, wrapper.get_delta_weight("default").double())


def test_training_with_peft_lowers_the_loss():
    peft = pytest.importorskip("peft", reason="peft is not installed")
    torch.manual_seed(0)
    model = moeq.torch.quantize_experts(qwen3_moe().to(DEVICE))
    model = peft.get_peft_model(model, peft.LoraConfig(r=8, lora_alpha=16, target_modules=[],
                                                       target_parameters=LORA_TARGETS))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    batch = tokens()
    losses = []
    for _ in range(20):
        loss = model(batch, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.9, losses
