//! Every failing call returns `Err` with the right status and a message that starts
//! with the name of the argument at fault; nothing panics.
mod support;

use moeq::{
    dequantize, expert_gemm_lora, expert_gemm_lora_backward, quantize, quantized_layout, DType, Device, Lora,
    QuantConfig, Status, Stream, Tensor, TensorView, TensorViewMut, WeightLayout,
};
use support::assert_rejects;
use support::problem::Problem;

fn problem() -> Problem {
    Problem::new(3, &[2, 3], 0, 64, 32, 4, WeightLayout::ExpertOutIn)
}

#[test]
fn slice_views_reject_shapes_and_strides_that_do_not_fit_the_slice() {
    let data = [0f32; 6];
    assert_rejects(TensorView::from_slice(&data, &[2, 4]), Status::InvalidArgument, "data");
    assert_rejects(TensorView::from_slice(&data, &[-1, 4]), Status::InvalidArgument, "shape");
    assert_rejects(TensorView::from_slice_strided(&data, &[2, 3], Some(&[3])), Status::InvalidArgument, "strides");
    assert_rejects(TensorView::from_slice_strided(&data, &[2, 3], Some(&[3, -1])), Status::InvalidArgument, "strides");
    assert_rejects(TensorView::from_slice_strided(&data, &[2, 3], Some(&[4, 1])), Status::InvalidArgument, "data");
    let mut out = [0u8; 3];
    assert_rejects(TensorViewMut::from_slice(&mut out, &[4]), Status::InvalidArgument, "data");
}

#[test]
fn library_tensors_reject_bad_shapes_and_host_access_of_another_dtype() {
    assert_rejects(Tensor::empty(&[2, -3], DType::F32, Device::Cpu), Status::InvalidArgument, "shape");
    assert_rejects(Tensor::empty(&[1; 17], DType::F32, Device::Cpu), Status::InvalidArgument, "ndim");
    let tensor = Tensor::empty(&[4], DType::F32, Device::Cpu).unwrap();
    assert_rejects(tensor.as_slice::<i32>(), Status::InvalidArgument, "tensor");
    // SAFETY: NULL is allowed and rejected.
    assert_rejects(unsafe { Tensor::from_raw(std::ptr::null_mut()) }, Status::InvalidArgument, "managed");
}

#[test]
fn gpu_tensors_without_a_gpu_give_no_device_or_unsupported() {
    if moeq::cuda_available() {
        return;
    }
    let error = Tensor::empty(&[16], DType::F32, Device::Cuda(0)).unwrap_err();
    assert!(matches!(error.status(), Status::NoDevice | Status::Unsupported), "{error:?}");
    assert!(error.to_string().contains("GPU") || error.to_string().contains("CUDA"), "{error}");
}

#[test]
fn quantize_rejects_bad_configs_and_inputs() {
    let values = [0.5f32; 128];
    let input = TensorView::from_slice(&values, &[2, 64]).unwrap();
    let odd_blocks = QuantConfig { blocksize: 48, ..QuantConfig::default() };
    assert_rejects(quantize(&input, &odd_blocks, Stream::DEFAULT), Status::InvalidArgument, "config.blocksize");
    assert_rejects(quantized_layout(&odd_blocks, &[2, 64]), Status::InvalidArgument, "config.blocksize");
    let integers = [1i32; 128];
    let integer_input = TensorView::from_slice(&integers, &[2, 64]).unwrap();
    assert_rejects(
        quantize(&integer_input, &QuantConfig::default(), Stream::DEFAULT),
        Status::InvalidArgument,
        "input",
    );
}

#[test]
fn dequantize_rejects_outputs_and_qtensors_that_do_not_fit() {
    let problem = problem();
    let shape = problem.weight.shape.clone();
    let mut out = vec![0f32; problem.dequantized.len()];
    let transposed = [shape[0], shape[2], shape[1]];
    assert_rejects(
        dequantize(&problem.weight.view(), TensorViewMut::from_slice(&mut out, &transposed).unwrap(), Stream::DEFAULT),
        Status::InvalidArgument,
        "out",
    );
    let mut integers = vec![0i32; out.len()];
    assert_rejects(
        dequantize(&problem.weight.view(), TensorViewMut::from_slice(&mut integers, &shape).unwrap(), Stream::DEFAULT),
        Status::InvalidArgument,
        "out",
    );
    let mut odd_blocks = problem.weight.view();
    odd_blocks.blocksize = 100;
    assert_rejects(
        dequantize(&odd_blocks, TensorViewMut::from_slice(&mut out, &shape).unwrap(), Stream::DEFAULT),
        Status::InvalidArgument,
        "q.blocksize",
    );
    let packed = problem.weight.packed.as_slice::<u8>().unwrap();
    let mut truncated = problem.weight.view();
    truncated.packed = TensorView::from_slice(&packed[..packed.len() / 2], &[packed.len() as i64 / 2]).unwrap();
    assert_rejects(
        dequantize(&truncated, TensorViewMut::from_slice(&mut out, &shape).unwrap(), Stream::DEFAULT),
        Status::InvalidArgument,
        "q.packed",
    );
    let mut nine_dims = problem.weight.view();
    nine_dims.shape = vec![1; 9];
    assert_rejects(
        dequantize(&nine_dims, TensorViewMut::from_slice(&mut out, &shape).unwrap(), Stream::DEFAULT),
        Status::InvalidArgument,
        "shape",
    );
}

#[test]
fn the_forward_gemm_names_the_operand_that_does_not_fit() {
    let problem = problem();
    let mut y = vec![0f32; problem.rows * problem.out_features];
    let mut wrong_y = vec![0f32; problem.rows * (problem.out_features - 1)];
    let mut x_lora_a = vec![0f32; problem.rows * problem.rank];
    let decreasing = [3i64, 2];
    let wrong_b = vec![0f32; problem.lora_b.len() + problem.out_features * problem.experts];

    let mut args = problem.forward_args(&mut y);
    args.x = TensorView::from_slice(&problem.x, &[problem.rows as i64, problem.in_features as i64, 1]).unwrap();
    assert_rejects(expert_gemm_lora(args, Stream::DEFAULT), Status::InvalidArgument, "x");

    let mut args = problem.forward_args(&mut y);
    args.y = TensorViewMut::from_slice(&mut wrong_y, &[problem.rows as i64, problem.out_features as i64 - 1]).unwrap();
    assert_rejects(expert_gemm_lora(args, Stream::DEFAULT), Status::InvalidArgument, "y");

    let mut args = problem.forward_args(&mut y);
    args.group_end = TensorView::from_slice(&decreasing, &[2]).unwrap();
    assert_rejects(expert_gemm_lora(args, Stream::DEFAULT), Status::InvalidArgument, "group_end");

    let mut args = problem.forward_args(&mut y);
    let rank_plus_one = [problem.experts as i64, problem.out_features as i64, problem.rank as i64 + 1];
    args.lora = Some(Lora { b: TensorView::from_slice(&wrong_b, &rank_plus_one).unwrap(), ..problem.lora() });
    assert_rejects(expert_gemm_lora(args, Stream::DEFAULT), Status::InvalidArgument, "lora_b");

    let mut args = problem.forward_args(&mut y);
    args.lora = Some(Lora { scale: f32::NAN, ..problem.lora() });
    assert_rejects(expert_gemm_lora(args, Stream::DEFAULT), Status::InvalidArgument, "lora_scale");

    let mut args = problem.forward_args(&mut y);
    args.lora = None;
    args.x_lora_a =
        Some(TensorViewMut::from_slice(&mut x_lora_a, &[problem.rows as i64, problem.rank as i64]).unwrap());
    assert_rejects(expert_gemm_lora(args, Stream::DEFAULT), Status::InvalidArgument, "x_lora_a");

    let mut args = problem.forward_args(&mut y);
    args.weight.shape = vec![problem.experts as i64 * problem.out_features as i64, problem.in_features as i64];
    assert_rejects(expert_gemm_lora(args, Stream::DEFAULT), Status::InvalidArgument, "weight");
}

#[test]
fn operands_on_another_device_are_an_error_not_a_copy() {
    let problem = problem();
    let mut y = vec![0f32; problem.rows * problem.out_features];
    let mut args = problem.forward_args(&mut y);
    // SAFETY: the library rejects the device mismatch before it reads any data.
    let lora_a_on_gpu = unsafe {
        TensorView::from_device_ptr(
            problem.lora_a.as_ptr().cast(),
            DType::F32,
            Device::Cuda(0),
            &problem.shape_a(),
            None,
        )
    };
    args.lora = Some(Lora { a: lora_a_on_gpu, ..problem.lora() });
    assert_rejects(expert_gemm_lora(args, Stream::DEFAULT), Status::InvalidArgument, "lora_a");
}

#[test]
fn the_backward_gemm_names_missing_and_misshapen_operands() {
    let problem = problem();
    let grad_y = vec![0f32; problem.rows * problem.out_features];
    let wrong_grad_y = vec![0f32; problem.rows * (problem.out_features + 1)];
    let mut gradients = problem.output_gradients();

    let mut args = problem.backward_args(&grad_y, &mut gradients);
    args.grad_y =
        TensorView::from_slice(&wrong_grad_y, &[problem.rows as i64, problem.out_features as i64 + 1]).unwrap();
    assert_rejects(expert_gemm_lora_backward(args, Stream::DEFAULT), Status::InvalidArgument, "grad_y");

    let mut args = problem.backward_args(&grad_y, &mut gradients);
    args.x = None;
    assert_rejects(expert_gemm_lora_backward(args, Stream::DEFAULT), Status::InvalidArgument, "x");

    let mut args = problem.backward_args(&grad_y, &mut gradients);
    args.lora = None;
    assert_rejects(expert_gemm_lora_backward(args, Stream::DEFAULT), Status::InvalidArgument, "grad_lora_a");

    let mut grad_x_transposed = vec![0f32; problem.rows * problem.in_features];
    let mut args = problem.backward_args(&grad_y, &mut gradients);
    args.grad_x = Some(
        TensorViewMut::from_slice(&mut grad_x_transposed, &[problem.in_features as i64, problem.rows as i64]).unwrap(),
    );
    assert_rejects(expert_gemm_lora_backward(args, Stream::DEFAULT), Status::InvalidArgument, "grad_x");
}

#[test]
fn workspace_queries_check_the_operands_and_need_nothing_on_the_cpu() {
    let problem = problem();
    let mut y = vec![0f32; problem.rows * problem.out_features];
    assert_eq!(problem.forward_args(&mut y).workspace_bytes(), Ok(0));
    let grad_y = vec![0f32; problem.rows * problem.out_features];
    let mut gradients = problem.output_gradients();
    assert_eq!(problem.backward_args(&grad_y, &mut gradients).workspace_bytes(), Ok(0));
    let mut args = problem.forward_args(&mut y);
    args.lora = Some(Lora { scale: f32::NAN, ..problem.lora() });
    assert_rejects(args.workspace_bytes(), Status::InvalidArgument, "lora_scale");
}

#[test]
fn an_error_displays_the_library_message_and_knows_its_status_name() {
    let error = Tensor::empty(&[2, -3], DType::F32, Device::Cpu).unwrap_err();
    assert_eq!(error.to_string(), error.message());
    assert_eq!(error.status().name(), "MOEQ_ERR_INVALID_ARGUMENT");
    assert_eq!(error.status().code(), moeq::sys::MOEQ_ERR_INVALID_ARGUMENT as i32);
}

#[test]
fn threads_failing_at_once_each_get_their_own_message() {
    let problem = problem();
    std::thread::scope(|scope| {
        for round in 0..8 {
            let problem = &problem;
            scope.spawn(move || {
                for _ in 0..50 {
                    if round % 2 == 0 {
                        assert_rejects(
                            Tensor::empty(&[1; 17], DType::F32, Device::Cpu),
                            Status::InvalidArgument,
                            "ndim",
                        );
                    } else {
                        let mut y = vec![0f32; problem.rows * problem.out_features];
                        let mut args = problem.forward_args(&mut y);
                        args.lora = Some(Lora { scale: f32::NAN, ..problem.lora() });
                        assert_rejects(expert_gemm_lora(args, Stream::DEFAULT), Status::InvalidArgument, "lora_scale");
                    }
                }
            });
        }
    });
}
