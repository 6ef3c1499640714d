//! Owned tensors release their memory exactly once: each test wraps a tensor in a
//! managed tensor whose deleter counts its calls before releasing what it wraps.
mod support;

use moeq::sys::{DLManagedTensorVersioned, DLPACK_FLAG_BITMASK_READ_ONLY};
use moeq::{
    dequantize, quantize, DType, Device, NestedStats, QuantConfig, Quantized, Stream, Tensor, TensorView, TensorViewMut,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The manager context of a counting managed tensor.
struct Counted {
    managed: DLManagedTensorVersioned,
    wrapped: *mut DLManagedTensorVersioned,
    deletions: Arc<AtomicUsize>,
}

unsafe extern "C" fn count_and_release(managed: *mut DLManagedTensorVersioned) {
    let counted = Box::from_raw((*managed).manager_ctx as *mut Counted);
    counted.deletions.fetch_add(1, Ordering::SeqCst);
    drop(Tensor::from_raw(counted.wrapped).expect("the wrapped tensor"));
}

/// `tensor` behind a deleter that adds one to `deletions` each time it runs.
fn counting(tensor: Tensor, deletions: &Arc<AtomicUsize>) -> *mut DLManagedTensorVersioned {
    let wrapped = tensor.into_raw();
    // SAFETY: `wrapped` is a live tensor we now own; its shape outlives the copy of its DLTensor.
    let managed = unsafe { *wrapped };
    let counted = Box::into_raw(Box::new(Counted {
        managed: DLManagedTensorVersioned { deleter: Some(count_and_release), ..managed },
        wrapped,
        deletions: Arc::clone(deletions),
    }));
    // SAFETY: `counted` was just allocated; its managed tensor points back at it.
    unsafe {
        (*counted).managed.manager_ctx = counted.cast();
        &mut (*counted).managed
    }
}

fn counted_tensor(shape: &[i64], deletions: &Arc<AtomicUsize>) -> Tensor {
    let raw = counting(Tensor::empty(shape, DType::F32, Device::Cpu).unwrap(), deletions);
    // SAFETY: `raw` is a live tensor owned by nothing else; its deleter runs on any thread.
    unsafe { Tensor::from_raw(raw) }.unwrap()
}

#[test]
fn dropping_a_tensor_calls_its_deleter_once() {
    let deletions = Arc::new(AtomicUsize::new(0));
    let tensor = counted_tensor(&[2, 3], &deletions);
    assert_eq!(tensor.shape(), &[2, 3]);
    assert_eq!(deletions.load(Ordering::SeqCst), 0);
    drop(tensor);
    assert_eq!(deletions.load(Ordering::SeqCst), 1);
}

#[test]
fn into_raw_hands_the_tensor_over_without_deleting_it() {
    let deletions = Arc::new(AtomicUsize::new(0));
    let raw = counted_tensor(&[4], &deletions).into_raw();
    assert_eq!(deletions.load(Ordering::SeqCst), 0);
    // SAFETY: `raw` came from into_raw and nothing else owns it.
    drop(unsafe { Tensor::from_raw(raw) }.unwrap());
    assert_eq!(deletions.load(Ordering::SeqCst), 1);
}

/// Breaks one field of a managed tensor.
type Change = fn(&mut DLManagedTensorVersioned);

#[test]
fn tensors_moeq_cannot_take_are_released_at_once_and_rejected() {
    let changes: [(&str, Change); 4] = [
        ("another DLPack major version", |managed| managed.version.major += 1),
        ("a negative ndim", |managed| managed.dl_tensor.ndim = -1),
        ("float64 data", |managed| managed.dl_tensor.dtype.bits = 64),
        ("a Vulkan buffer", |managed| managed.dl_tensor.device.device_type = moeq::sys::kDLVulkan),
    ];
    for (what, change) in changes {
        let deletions = Arc::new(AtomicUsize::new(0));
        let raw = counting(Tensor::empty(&[4], DType::F32, Device::Cpu).unwrap(), &deletions);
        // SAFETY: `raw` is live and owned by nothing else; from_raw releases it.
        unsafe { change(&mut *raw) };
        support::assert_rejects(unsafe { Tensor::from_raw(raw) }, moeq::Status::InvalidArgument, "managed");
        assert_eq!(deletions.load(Ordering::SeqCst), 1, "{what}");
    }
}

#[test]
fn a_tensor_sent_to_another_thread_is_deleted_once_there() {
    let deletions = Arc::new(AtomicUsize::new(0));
    let tensor = counted_tensor(&[8], &deletions);
    std::thread::spawn(move || drop(tensor)).join().unwrap();
    assert_eq!(deletions.load(Ordering::SeqCst), 1);
}

#[test]
fn dropping_a_qtensor_deletes_each_of_its_buffers_once() {
    let deletions = Arc::new(AtomicUsize::new(0));
    let values: Vec<f32> = (0..256).map(|i| (i % 17) as f32 / 8.0 - 1.0).collect();
    let input = TensorView::from_slice(&values, &[4, 64]).unwrap();
    let config = QuantConfig { nested: true, ..QuantConfig::default() };
    let quantized = quantize(&input, &config, Stream::DEFAULT).unwrap();
    let recount = |tensor: Tensor| unsafe { Tensor::from_raw(counting(tensor, &deletions)) }.unwrap();
    let nested = quantized.nested.expect("nested statistics");
    let quantized = Quantized {
        packed: recount(quantized.packed),
        absmax: recount(quantized.absmax),
        nested: Some(NestedStats {
            absmax: recount(nested.absmax),
            code: recount(nested.code),
            offset: recount(nested.offset),
        }),
        ..quantized
    };
    let mut restored = vec![0f32; values.len()];
    dequantize(&quantized.view(), TensorViewMut::from_slice(&mut restored, &[4, 64]).unwrap(), Stream::DEFAULT)
        .unwrap();
    assert!(values.iter().zip(&restored).all(|(value, back)| (value - back).abs() < 0.15));
    assert_eq!(deletions.load(Ordering::SeqCst), 0);
    drop(quantized);
    assert_eq!(deletions.load(Ordering::SeqCst), 5);
}

#[test]
fn library_tensors_are_written_by_calls_and_read_back_on_the_host() {
    let values: Vec<f32> = (0..128).map(|i| i as f32 / 64.0 - 1.0).collect();
    let quantized =
        quantize(&TensorView::from_slice(&values, &[2, 64]).unwrap(), &QuantConfig::default(), Stream::DEFAULT)
            .unwrap();
    let mut restored = Tensor::empty(&[2, 64], DType::F32, Device::Cpu).unwrap();
    dequantize(&quantized.view(), restored.view_mut(), Stream::DEFAULT).unwrap();
    let restored = restored.as_slice::<f32>().unwrap();
    // NF4 levels are at most 0.28 apart on [-1, 1].
    assert!(values.iter().zip(restored).all(|(value, back)| (value - back).abs() < 0.15));
}

#[test]
fn read_only_tensors_refuse_writable_access() {
    let deletions = Arc::new(AtomicUsize::new(0));
    let raw = counted_tensor(&[4], &deletions).into_raw();
    // SAFETY: `raw` is live and owned by nothing else; only its flags change.
    unsafe { (*raw).flags |= u64::from(DLPACK_FLAG_BITMASK_READ_ONLY) };
    let mut tensor = unsafe { Tensor::from_raw(raw) }.unwrap();
    assert!(tensor.is_read_only());
    support::assert_rejects(tensor.as_mut_slice::<f32>(), moeq::Status::InvalidArgument, "tensor");
    assert!(tensor.as_slice::<f32>().is_ok());
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tensor.view_mut();
    }));
    assert!(panicked.is_err(), "view_mut of a read-only tensor must panic");
    drop(tensor);
    assert_eq!(deletions.load(Ordering::SeqCst), 1);
}
