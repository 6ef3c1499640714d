"""PEFT LoRA on moeq experts: PEFT's lora_A / lora_B read in place, and PEFT's ParamWrapper
forward routed to moeq's fused GEMM instead of adding a dense delta to the weight."""


def peft_lora_views(layout, experts, swapped):
    """(lora_A.weight [r*E, d1 or d2], lora_B.weight [.., r*E]) -> moeq's lora_a [E, r, K] and
    lora_b [E, N, r], as views. PEFT's delta of expert e over a parameter [E, d1, d2] is
    left_e @ right_e (left [d1, r], right [r, d2]): A_eᵀ·B_eᵀ, or B_e·A_e when PEFT
    swapped in/out features for an [experts, out, in] parameter."""

    def views(lora_a, lora_b):
        rank = lora_a.shape[0] // experts
        if swapped:
            left = lora_b.view(lora_b.shape[0], rank, experts).permute(2, 0, 1)
            right = lora_a.view(experts, rank, lora_a.shape[1])
        else:
            left = lora_a.view(experts, rank, lora_a.shape[1]).transpose(1, 2)
            right = lora_b.view(lora_b.shape[0], rank, experts).permute(2, 1, 0)
        if layout == "out_in":  # parameter [E, N, K]: y += x·(left·right)ᵀ
            return right, left
        return left.transpose(1, 2), right.transpose(1, 2)  # parameter [E, K, N]: y += x·left·right

    return views


def active_lora(wrapper):
    """The experts module under a chain of PEFT ParamWrappers and, per parameter name, the
    active adapter's (lora_A.weight, lora_B.weight, scaling, swapped)."""
    lora = {}
    module = wrapper
    while hasattr(module, "parameter_name") and hasattr(module, "base_layer"):
        if module.merged:
            raise NotImplementedError("moeq experts keep 4-bit weights: LoRA cannot be merged into them")
        adapters = [] if module.disable_adapters else \
            [name for name in module.active_adapters if name in module.lora_A]
        if len(adapters) > 1:
            raise NotImplementedError(f"moeq experts take one active LoRA adapter per parameter, "
                                      f"got {adapters} on {module.parameter_name}")
        if adapters:
            name = adapters[0]
            lora[module.parameter_name] = (
                module.lora_A[name].weight, module.lora_B[name].weight, module.scaling[name],
                getattr(module, "_did_swap_in_out_features", False))
        module = module.base_layer
    return module, lora


def _forward_through_moeq(self, hidden_states, *args, **kwargs):
    experts, lora = active_lora(self)
    return experts(hidden_states, *args, lora=lora, **kwargs)


_ROUTED_CLASSES = {}


def route_peft_wrappers(parent, args, attribute):
    """Forward pre-hook of the module owning moeq experts: gives the PEFT wrappers around
    them (if any) a forward that hands their LoRA factors to moeq."""
    module = getattr(parent, attribute)
    while hasattr(module, "parameter_name") and hasattr(module, "base_layer"):
        wrapper_class = type(module)
        if wrapper_class not in _ROUTED_CLASSES.values():
            if wrapper_class not in _ROUTED_CLASSES:
                _ROUTED_CLASSES[wrapper_class] = type(f"Moeq{wrapper_class.__name__}",
                                                      (wrapper_class,),
                                                      {"forward": _forward_through_moeq})
            module.__class__ = _ROUTED_CLASSES[wrapper_class]
        module = module.base_layer
