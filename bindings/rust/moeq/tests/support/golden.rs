//! The golden vectors of real bitsandbytes (tests/data/bnb_golden_public.tar.gz, which
//! the CMake build unpacks): where they are, and one case as raw little-endian bytes.
use super::manifest;
use moeq::{DType, Format};
use std::path::PathBuf;
use std::{env, fs};

/// $MOEQ_GOLDEN_DIR, else the folder the CMake build at $MOEQ_BUILD_DIR (relative
/// to the repository root; default "build") unpacks the archive into.
pub fn golden_dir() -> PathBuf {
    if let Some(dir) = env::var_os("MOEQ_GOLDEN_DIR") {
        return PathBuf::from(dir);
    }
    let repository = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let build_dir = env::var_os("MOEQ_BUILD_DIR").unwrap_or_else(|| "build".into());
    repository.join(build_dir).join("tests/golden/bnb_golden_public")
}

pub fn case_names() -> Vec<String> {
    let index_path = golden_dir().join("index.json");
    let index = fs::read_to_string(&index_path).unwrap_or_else(|error| {
        panic!("{}: {error} (build moeq with CMake, or set MOEQ_GOLDEN_DIR)", index_path.display())
    });
    manifest::array(&index, "cases")
}

pub struct GoldenCase {
    pub name: String,
    pub format: Format,
    pub dtype: DType,
    pub blocksize: i32,
    pub nested: bool,
    pub shape: Vec<i64>,
    pub nested_offset: f32,
    pub input: Vec<u8>,
    pub packed: Vec<u8>,
    /// float32 values, or uint8 codes when nested.
    pub absmax: Vec<u8>,
    pub dequantized: Vec<u8>,
    pub nested_absmax: Vec<u8>,
    pub nested_code: Vec<u8>,
}

pub fn load(name: &str) -> GoldenCase {
    let dir = golden_dir().join(name);
    let json = fs::read_to_string(dir.join("manifest.json")).expect("manifest.json of a golden case");
    let read = |file: &str| fs::read(dir.join(file)).unwrap_or_default();
    let nested = manifest::flag(&json, "nested");
    GoldenCase {
        name: name.to_string(),
        format: if manifest::string(&json, "quant_type") == "nf4" { Format::Nf4 } else { Format::Fp4 },
        dtype: match manifest::string(&json, "dtype").as_str() {
            "float32" => DType::F32,
            "float16" => DType::F16,
            _ => DType::BF16,
        },
        blocksize: manifest::integer(&json, "blocksize") as i32,
        nested,
        shape: manifest::array(&json, "shape").iter().map(|size| size.parse().expect("a size")).collect(),
        nested_offset: if nested {
            f32::from_bits(manifest::integer(&json, "nested_offset_f32_hex") as u32)
        } else {
            0.0
        },
        input: read("input.bin"),
        packed: read("packed.bin"),
        absmax: read("absmax.bin"),
        dequantized: read("dequantized.bin"),
        nested_absmax: read("nested_absmax.bin"),
        nested_code: read("nested_quant_map.bin"),
    }
}

/// Little-endian float32 bytes as values.
pub fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]])).collect()
}

/// Little-endian 16-bit patterns.
pub fn halves(bytes: &[u8]) -> Vec<u16> {
    bytes.chunks_exact(2).map(|chunk| u16::from_le_bytes([chunk[0], chunk[1]])).collect()
}
