//! Element types moeq's tensors use, as DLPack dtypes, and the Rust types that hold them.
use moeq_sys::{kDLBfloat, kDLFloat, kDLInt, kDLUInt, DLDataType};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    F16,
    BF16,
    U8,
    I32,
    I64,
}

impl DType {
    pub fn bytes(self) -> usize {
        match self {
            DType::U8 => 1,
            DType::F16 | DType::BF16 => 2,
            DType::F32 | DType::I32 => 4,
            DType::I64 => 8,
        }
    }

    pub(crate) fn to_dl(self) -> DLDataType {
        let (code, bits) = match self {
            DType::F32 => (kDLFloat, 32),
            DType::F16 => (kDLFloat, 16),
            DType::BF16 => (kDLBfloat, 16),
            DType::U8 => (kDLUInt, 8),
            DType::I32 => (kDLInt, 32),
            DType::I64 => (kDLInt, 64),
        };
        DLDataType { code: code as u8, bits, lanes: 1 }
    }

    /// `None` for a dtype moeq never takes.
    pub(crate) fn from_dl(dtype: DLDataType) -> Option<DType> {
        [DType::F32, DType::F16, DType::BF16, DType::U8, DType::I32, DType::I64].into_iter().find(|candidate| {
            let dl = candidate.to_dl();
            (dl.code, dl.bits, dl.lanes) == (dtype.code, dtype.bits, dtype.lanes)
        })
    }
}

/// A Rust type whose values are laid out as one element of `DTYPE`.
///
/// # Safety
/// `Self` must have the size and bit layout of `DTYPE` and every bit pattern must be valid.
pub unsafe trait Element: Copy + Send + Sync + 'static {
    const DTYPE: DType;
}

/// A bfloat16 value, as its 16-bit pattern.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bf16(pub u16);

impl Bf16 {
    /// Rounds to the nearest bfloat16, ties to even (NaN stays NaN).
    pub fn from_f32(value: f32) -> Bf16 {
        let bits = value.to_bits();
        if value.is_nan() {
            return Bf16((bits >> 16) as u16 | 0x40);
        }
        let round_to_even = 0x7fff + ((bits >> 16) & 1);
        Bf16((bits.wrapping_add(round_to_even) >> 16) as u16)
    }

    pub fn to_f32(self) -> f32 {
        f32::from_bits(u32::from(self.0) << 16)
    }
}

/// An IEEE float16 value, as its 16-bit pattern.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct F16(pub u16);

/// Implements `Element` for types that are the plain bit layout of their dtype.
macro_rules! elements {
    ($($rust_type:ty => $dtype:ident),* $(,)?) => {
        // SAFETY: each type is the plain bit layout of its DLPack dtype.
        $(unsafe impl Element for $rust_type {
            const DTYPE: DType = DType::$dtype;
        })*
    };
}

elements!(f32 => F32, F16 => F16, Bf16 => BF16, u8 => U8, i32 => I32, i64 => I64);
